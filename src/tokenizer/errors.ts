/** Every tokenizer failure (missing or corrupt model file, unsupported model, bad input ids or text). */
export class TokenizerError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenizerError';
  }
}
