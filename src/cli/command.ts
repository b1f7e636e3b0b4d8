// What every subcommand of `minicpmv` provides.
import type { FlagSpecs } from './args.ts';
import { UserError } from '../errors.ts';

export interface CommandIO {
  out: (s: string) => void;
  /** Writes to stderr, adding a newline unless `newline` is false (prompts, progress redrawn in place). */
  err: (s: string, newline?: boolean) => void;
  isTTY: boolean;
}

export interface Command {
  name: string;
  summary: string;
  /** Usage line after `minicpmv <name>`. */
  usage: string;
  flags: FlagSpecs;
  maxPositionals?: number;
  /** Extra help text (examples). */
  details?: string;
  /** Returns the exit code: 0 ok, 1 a negative result (e.g. compare failed), 2 bad input. */
  run(argv: string[], io: CommandIO): Promise<number>;
}

/**
 * Not an error: stdout was closed by its reader (`minicpmv tokenize --file big.jsonl | head -1`). `io.out`
 * throws it so a command stops producing output nobody reads; main() ends quietly.
 */
export class StdoutClosed extends Error {
  constructor() {
    super('stdout was closed by its reader');
  }
}

/** An error caused by the user's input: printed as one line, exit code 2. */
export class InputError extends UserError {}
