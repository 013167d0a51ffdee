import { Counter } from "prom-client";
import type { DeadLetterPort } from "../ports/dead-letter.ts";

// On the process's default registry, which every service's /metrics serves. Counted once per
// letter across a mesh: the NATS adapters count only a letter the dead-letter stream had not
// stored yet, since every replica of a service hears the same max-deliveries advisory.
const deadLettersTotal = new Counter({
  name: "cutline_dead_letters_total",
  help: "Messages set aside after their deliveries ran out (listed by the port's deadLetters()), by port and subject. Any increase needs a look.",
  labelNames: ["port", "subject"] as const,
});

export function countDeadLetter(port: DeadLetterPort, subject: string): void {
  deadLettersTotal.inc({ port, subject });
}
