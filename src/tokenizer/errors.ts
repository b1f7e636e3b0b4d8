import { UserError } from '../errors.ts';

/** Every tokenizer failure (missing or corrupt model file, unsupported model, bad input ids or text). */
export class TokenizerError extends UserError {}
