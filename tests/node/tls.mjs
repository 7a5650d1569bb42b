// The Node.js client over TLS with basic authentication: scripts/test-clients runs it against
// `chronik serve --tls-cert --tls-key` (CHRONIK_TLS_SERVER=host:port, CHRONIK_TLS_CA=<the PEM
// of the authority that signed the server's certificate>).
import assert from "node:assert/strict";
import { KurrentDBClient, jsonEvent, NO_STREAM, START, FORWARDS } from "@kurrent/kurrentdb-client";

const server = process.env.CHRONIK_TLS_SERVER ?? "127.0.0.1:2113";
const ca = process.env.CHRONIK_TLS_CA ?? "ca.pem";
const stream = `secure-${Date.now()}`;

const client = KurrentDBClient.connectionString`kurrentdb://admin:changeit@${server}?tls=true&tlsCAFile=${ca}`;
await client.appendToStream(stream, jsonEvent({ type: "Sealed", data: { n: 1 } }), { streamState: NO_STREAM });
const read = [];
for await (const { event } of client.readStream(stream, { fromRevision: START, direction: FORWARDS })) {
  read.push([event.type, event.data.n]);
}
assert.deepEqual(read, [["Sealed", 1]]);
await client.dispose();

const intruder = KurrentDBClient.connectionString`kurrentdb://admin:wrong@${server}?tls=true&tlsCAFile=${ca}`;
await assert.rejects(
  async () => {
    for await (const _ of intruder.readStream(stream, { fromRevision: START, direction: FORWARDS })) {
      // no event may come
    }
  },
  (error) => error.type === "access-denied", // the client's mapping of UNAUTHENTICATED
);
await intruder.dispose();
console.log("the Node.js client appended and read over TLS; a wrong password was refused");
