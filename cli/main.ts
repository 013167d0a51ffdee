// `cutline`: the command-line client of a Cutline gateway. It reaches the gateway only through the
// generated Connect clients (services/common/gen) and the shared helpers of services/common/
// (credits, error reasons); test/boundaries.spec.ts holds that line.
// Exit codes: 0 done, 1 something failed (a file, a call, the server), 2 a usage error.
import { parseArgs } from "node:util";
import { balanceCommand, keysCommand, usageCommand } from "./account.commands.ts";
import { EXIT_FAILED, EXIT_OK, EXIT_USAGE, flag, type Command } from "./command.ts";
import { CliError, connect, describeError, DEFAULT_URL, type Connection } from "./connection.ts";
import { removeCommand } from "./remove.command.ts";
import { videoCommand } from "./video.command.ts";

const COMMANDS: Record<string, Command> = {
  remove: removeCommand,
  video: videoCommand,
  balance: balanceCommand,
  usage: usageCommand,
  keys: keysCommand,
};

const GLOBAL_OPTIONS = { grpc: flag, help: { type: "boolean", short: "h" } } as const;

const HELP = `Usage: cutline <command> [options]        (cutline <command> --help for each)

Commands:
${Object.values(COMMANDS)
  .map((command) => `  ${command.summary}`)
  .join("\n")}

Environment:
  CUTLINE_URL        the gateway (default ${DEFAULT_URL})
  CUTLINE_API_KEY    the API key; unset: the key \`npm start\` wrote to $CUTLINE_DATA_DIR/api-key (default ./.data)

Every command takes --json (the answer as one JSON line, printed last) and --grpc (gRPC instead of
Connect). Exit codes: 0 done, 1 something failed (a file, a call, the server), 2 a usage error.`;

export async function main(argv: string[], environment: NodeJS.ProcessEnv): Promise<number> {
  const [name, ...rest] = argv;
  if (name === undefined || name === "--help" || name === "-h" || name === "help") {
    process.stdout.write(`${HELP}\n`);
    return name === undefined ? EXIT_USAGE : EXIT_OK;
  }
  const command = COMMANDS[name];
  if (!command) return usageError(`unknown command ${JSON.stringify(name)}; one of ${Object.keys(COMMANDS).join(", ")}`);
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args: rest, options: { ...command.options, ...GLOBAL_OPTIONS }, allowPositionals: true, strict: true });
  } catch (error) {
    return usageError(`${(error as Error).message}\n\n${command.help}`);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  if (values.help) {
    process.stdout.write(`${command.help}\n`);
    return EXIT_OK;
  }
  let connection: Connection | undefined;
  try {
    return await command.run({
      values,
      positionals: parsed.positionals,
      json: values.json === true,
      connection: () => (connection ??= connect({ environment, grpc: values.grpc === true })),
      print: (line) => process.stdout.write(`${line}\n`),
      warn: (line) => process.stderr.write(`${line}\n`),
    });
  } catch (error) {
    if (error instanceof CliError && error.exitCode === EXIT_USAGE) return usageError(`${error.message} (cutline ${name} --help)`);
    const { reason, message } = describeError(error);
    process.stderr.write(`cutline ${name}: ${message} (${reason})\n`);
    return EXIT_FAILED;
  }
}

function usageError(message: string): number {
  process.stderr.write(`cutline: ${message}\n`);
  return EXIT_USAGE;
}
