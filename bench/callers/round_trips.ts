// Round trips of the generated TypeScript caller: `node round_trips.js URL CALLS` prints the seconds of each call as JSON.
import { Client } from "../generated/index";

async function main(): Promise<void> {
  const client = new Client(process.argv[2]);
  const calls = Number(process.argv[3]);
  const call = async (): Promise<void> => {
    const sum = await client.mathAdd(4, 7);
    if (sum !== 11) {
      throw new Error(`add(4, 7) is ${sum}`);
    }
  };
  for (let i = 0; i < 30; i++) {
    await call(); // warm-up, as the Python sides get
  }
  const times: number[] = [];
  for (let i = 0; i < calls; i++) {
    const started = process.hrtime.bigint();
    await call();
    times.push(Number(process.hrtime.bigint() - started) / 1e9);
  }
  await client.close();
  console.log(JSON.stringify(times));
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
