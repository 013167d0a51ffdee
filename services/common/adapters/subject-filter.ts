// The NATS subject wildcard rules, for the in-process event bus: `*` matches one token, `>` one
// or more trailing tokens.

export function subjectMatches(filter: string, subject: string): boolean {
  const filterTokens = filter.split(".");
  const subjectTokens = subject.split(".");
  for (let index = 0; index < filterTokens.length; index++) {
    const token = filterTokens[index];
    if (token === ">") return subjectTokens.length > index;
    if (index >= subjectTokens.length) return false;
    if (token !== "*" && token !== subjectTokens[index]) return false;
  }
  return filterTokens.length === subjectTokens.length;
}

/** Throws on what NATS would reject, so both adapters refuse the same subjects. */
export function assertValidSubject(subject: string, { wildcards }: { wildcards: boolean }): void {
  const tokens = subject.split(".");
  tokens.forEach((token, index) => {
    const bad =
      token === "" ||
      /\s/.test(token) ||
      (!wildcards && (token === "*" || token === ">")) ||
      (token.length > 1 && /[*>]/.test(token)) ||
      (token === ">" && index !== tokens.length - 1);
    if (bad) throw new Error(`invalid ${wildcards ? "subject filter" : "subject"} ${JSON.stringify(subject)}`);
  });
}

/** JetStream consumer names allow neither dots, wildcards nor whitespace; both adapters refuse the same. */
export function assertValidDurableName(durableName: string): void {
  if (!/^[A-Za-z0-9_-]+$/.test(durableName)) throw new Error(`durableName must match [A-Za-z0-9_-]+, got ${JSON.stringify(durableName)}`);
}
