// The README's Node.js snippet, with checks: scripts/test-clients runs it against
// `chronik serve` (CHRONIK_SERVER=host:port) and fails if it does not print what it should.
import assert from "node:assert/strict";
import { KurrentDBClient, jsonEvent, NO_STREAM, START, FORWARDS } from "@kurrent/kurrentdb-client";

const server = process.env.CHRONIK_SERVER ?? "127.0.0.1:2113";
const stream = `account-${Date.now()}`;

const client = KurrentDBClient.connectionString`kurrentdb://${server}?tls=false`;
const result = await client.appendToStream(stream, jsonEvent({ type: "Opened", data: { owner: "ana" } }), {
  streamState: NO_STREAM,
});
assert.equal(result.nextExpectedRevision, 0n);

const read = [];
for await (const { event } of client.readStream(stream, { fromRevision: START, direction: FORWARDS })) {
  read.push([event.revision, event.type, event.data.owner]);
}
assert.deepEqual(read, [[0n, "Opened", "ana"]]);

const subscription = client.subscribeToAll({
  fromPosition: START,
  filter: { filterOn: "streamName", prefixes: [stream] },
});
for await (const { event } of subscription) {
  assert.equal(event.streamId, stream);
  break;
}
await client.dispose();
console.log("the Node.js client appended, read and subscribed");
