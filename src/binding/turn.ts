/** One turn of the event loop: Node's setImmediate, or in a browser a MessageChannel message (a task that, unlike
 * setTimeout(0), is not clamped to 4 ms). */
let channel: InstanceType<typeof MessageChannel> | null = null;
const waiting: (() => void)[] = [];

export function nextTurn(): Promise<void> {
  if (typeof setImmediate === 'function') return new Promise<void>((resolve) => setImmediate(resolve));
  if (channel === null) {
    channel = new MessageChannel();
    // addEventListener (not onmessage) types in Node and the DOM alike; a browser port needs start() with it.
    const port1 = channel.port1 as unknown as { addEventListener(t: 'message', f: () => void): void; start(): void };
    port1.addEventListener('message', () => waiting.shift()?.());
    port1.start();
  }
  const port = channel.port2;
  return new Promise<void>((resolve) => {
    waiting.push(resolve);
    port.postMessage(null);
  });
}
