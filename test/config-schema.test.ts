// The configuration's JSON Schema (schema/mcplex.schema.json): generated from the zod schema, and every example
// configuration of the project validates against it, as an editor would check it.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { configJsonSchema } from '../src/config/json-schema.js';
import { parseConfig } from '../src/config/load-config.js';
import { ROOT } from './support/harness.js';

const committed = JSON.parse(readFileSync(join(ROOT, 'schema', 'mcplex.schema.json'), 'utf8')) as object;
const validate = new Ajv2020({ strict: false, allErrors: true }).compile(committed);
const read = (path: string) => JSON.parse(readFileSync(join(ROOT, path), 'utf8')) as Record<string, unknown>;

/** The complete configurations among the README's JSON blocks. */
function readmeConfigs(): Record<string, unknown>[] {
  const text = readFileSync(join(ROOT, 'README.md'), 'utf8');
  return [...text.matchAll(/```json\n([\s\S]*?)```/g)].map((match) => JSON.parse(match[1]!) as Record<string, unknown>);
}

describe('the configuration JSON Schema', () => {
  it('is what the zod schema generates (npm run schema writes it)', () => {
    expect(committed).toEqual(configJsonSchema());
  });

  it.each(['examples/mcplex.json', 'deploy/cluster.json'])('validates %s, which names it in $schema', (path) => {
    const config = read(path);
    expect(config.$schema).toBe('../schema/mcplex.schema.json');
    expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
    // And mcplex takes it as well.
    expect(() => parseConfig(config, { MCPLEX_REQUEST_STATE_KEY: 'k'.repeat(32) })).not.toThrow();
  });

  it("validates the README's configuration examples", () => {
    const configs = readmeConfigs();
    expect(configs.length).toBeGreaterThanOrEqual(2);
    for (const config of configs) expect(validate(config), JSON.stringify(validate.errors)).toBe(true);
  });

  it('flags what an editor should: an unknown key, a wrong type, an unknown enum value', () => {
    for (const bad of [
      { mcpServer: {} },
      { server: { port: '7070' } },
      { mcpServers: { fs: { command: 'npx', comand: 'x' } } },
      { llm: { models: { m: { deployments: [{ provider: 'azure', model: 'x' }] } } } },
    ]) {
      expect(validate(bad)).toBe(false);
    }
  });
});
