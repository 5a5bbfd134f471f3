/** Imported FIRST (before anything that imports src/) by every test and bench that uses the addon's testing hooks:
 * selects the testing build as this process's addon (CKPTIO_TESTING=1; see testing() in src/binding/native.ts for
 * why it must be the process's one addon rather than a second one loaded beside the release build). */
process.env.CKPTIO_TESTING = '1';

export {};
