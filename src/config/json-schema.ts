// The configuration's JSON Schema, generated from the zod schema (zod's own JSON Schema output), for editors:
// completion and checks of every key while the file is written. It describes the file as written (the input),
// and it is looser than mcplex where JSON Schema cannot say as much (a server's "command" or "url", unique prefixes).
import * as z from 'zod';
import { configSchema } from './schema.js';

/** A string that names an environment variable (`${VAR}` or `${VAR:-default}`) somewhere in it. */
const ENV_REFERENCE = '\\$\\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\\}';

export function configJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(configSchema, {
    io: 'input',
    // A refinement says nothing JSON Schema can carry; the loader still checks it.
    unrepresentable: 'any',
    override: ({ jsonSchema }) => {
      // A URL may be written with `${VAR}` in it, which no URI format admits.
      if (jsonSchema.format === 'uri') delete jsonSchema.format;
      // Any checked string may come from the environment: `${VAR}` is checked once it is expanded.
      if (jsonSchema.type === 'string' && (jsonSchema.pattern !== undefined || jsonSchema.minLength !== undefined)) {
        const checked = { ...jsonSchema };
        for (const key of Object.keys(jsonSchema)) delete (jsonSchema as Record<string, unknown>)[key];
        jsonSchema.anyOf = [checked, { type: 'string', pattern: ENV_REFERENCE }];
      }
    },
  });
  return { ...schema, title: 'mcplex configuration' };
}
