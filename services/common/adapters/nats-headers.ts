// Port headers (plain records) as NATS message headers and back. NATS may write a key in MIME
// case (`Traceparent`); a port reads every key in lower case, as HTTP/2 and the W3C propagator do.
import { headers as natsHeaders, type MsgHdrs } from "@nats-io/transport-node";

/** The NATS headers of a message, with `msgID` kept by the caller; undefined when there are none. */
export function natsHeadersOf(record: Readonly<Record<string, string>> | undefined): MsgHdrs | undefined {
  if (record === undefined) return undefined;
  const entries = Object.entries(record);
  if (entries.length === 0) return undefined;
  const result = natsHeaders();
  for (const [key, value] of entries) result.set(key, value);
  return result;
}

/** A message's own headers (NATS's `Nats-*` ones left out); undefined when it has none. */
export function recordOfNatsHeaders(received: MsgHdrs | undefined): Record<string, string> | undefined {
  if (received === undefined) return undefined;
  const record: Record<string, string> = {};
  for (const key of received.keys()) {
    if (key.toLowerCase().startsWith("nats-")) continue;
    record[key.toLowerCase()] = received.get(key);
  }
  return Object.keys(record).length === 0 ? undefined : record;
}
