// The one base class for errors the user can fix: a bad file, flag, config, prompt or argument. The CLI
// prints such an error as one line and exits 2; anything else is a bug (exit 3, "internal error").
// `details` holds what does not fit on the line (every problem of a checkpoint, say); the CLI prints
// it under --verbose.
export class UserError extends Error {
  constructor(message: string, readonly details: readonly string[] = []) {
    super(message);
    this.name = new.target.name;
  }
}

/** A tensor handed to a model entry point with the wrong shape; the message names the module. */
export class ShapeError extends UserError {}
