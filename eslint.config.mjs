// ESLint (flat config): the recommended JavaScript and TypeScript rules over the sources, tests and benchmarks,
// without type information (fast enough for every CI run). Formatting is Prettier's, not ESLint's.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/**', 'build*/**', 'node_modules/**', 'prebuilds/**', 'native/**', 'examples/**/node_modules/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    rules: {
      // `_name` marks a deliberately unused binding (a destructured field left out).
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // The addon is loaded with require() on purpose (a path computed at run time); so are optional peers.
      '@typescript-eslint/no-require-imports': 'off',
      // Error messages carry the callee (Error.captureStackTrace(holder, fn)).
      '@typescript-eslint/no-unsafe-function-type': 'off',
    },
  },
  {
    files: ['**/*.js', '**/*.mjs', '**/*.cjs'],
    languageOptions: {
      globals: {
        require: 'readonly',
        module: 'writable',
        process: 'readonly',
        __dirname: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setTimeout: 'readonly',
      },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    // The browser tests' page runs in Chromium, not Node.
    files: ['test/browser/**/*.mjs'],
    languageOptions: {
      globals: {
        window: 'readonly',
        navigator: 'readonly',
        performance: 'readonly',
        crossOriginIsolated: 'readonly',
        crypto: 'readonly',
        atob: 'readonly',
        btoa: 'readonly',
        Worker: 'readonly',
        URL: 'readonly',
        Blob: 'readonly',
      },
    },
  },
);
