// Reading config.json from a file (Node); parsing and every derived number are in config.ts.
import { ConfigError, parseConfig, type MiniCPMVConfig } from './config.ts';
import { MiB, readRegularText } from './files.ts';

/** The real config.json is 1.3 kB; a file this large is not a config. */
export const MAX_CONFIG_BYTES = 16 * MiB;

export function loadConfig(path: string): MiniCPMVConfig {
  const text = readRegularText(path, `config ${path}`, MAX_CONFIG_BYTES, (m) => new ConfigError(m));
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${path}: not valid JSON (${(e as Error).message})`);
  }
  return parseConfig(json, path);
}
