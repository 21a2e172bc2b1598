#!/usr/bin/env node
/**
 * src/cli — the `zmesh` command.
 *
 * Does: parse arguments, read and write files, print human tables or JSON, map errors to exit codes
 * (0 ok, 1 the checked thing failed or a run-time failure, 2 invalid input or usage — on every subcommand).
 * Does not: hold logic of its own; it calls src/blueprint, src/plan, the agent and the admin socket.
 */
import { buildProgram } from './program.ts';
import { runMain } from './util.ts';

await runMain(await buildProgram(), process.argv);
