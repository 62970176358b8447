// fast-check generators for the hostile-input fuzz suite: requests for every route of mcplex, mostly valid-looking
// so that they reach real handling, each mutated now and then, and labelled with why it is bad input.
import fc from 'fast-check';
import type { Arbitrary } from 'fast-check';
import { JsonEntries, RawJson, jsonText, stringField } from './json-text.js';
import type { Json } from './json-text.js';

export const LEGACY_VERSION = '2025-11-25';
export const MODERN_VERSION = '2026-07-28';
/** Nesting at least this deep is bad input, whatever limit mcplex sets (its parsers refuse far less). */
export const DEEP = 10_000;

/** How the runner fills in the Authorization header (keys exist only at run time). */
export type AuthChoice =
  | 'plain'
  | 'scoped'
  | 'admin'
  | 'plain-lowercase'
  | 'plain-uppercase'
  | 'plain-spaces'
  | 'plain-x-api-key'
  | 'missing'
  | 'malformed'
  | 'unknown-key'
  | 'basic'
  | 'bearer-empty';

/** A valid key in a form RFC 9110 allows (the scheme is case-insensitive, `1*SP` before the credentials). */
export const VALID_KEY_FORMS: ReadonlySet<AuthChoice> = new Set([
  'plain',
  'scoped',
  'admin',
  'plain-lowercase',
  'plain-uppercase',
  'plain-spaces',
  'plain-x-api-key',
]);

/**
 * One generated request. `{{session}}`, `{{conversation}}` and `{{port}}` in the path, header values and body are
 * filled in by the runner (a live legacy session, a live conversation of the plain key, the listening port).
 */
export interface FuzzRequest {
  /** What it exercises, for counts: `mcp:legacy:tools/call`, `v1:chat`, `admin:keys:delete`, ... */
  route: string;
  method: string;
  path: string;
  headers: Record<string, string>;
  auth: AuthChoice;
  body?: string;
  /** Why this is bad input; a bad request must get a client error (4xx, or a JSON-RPC client error on /mcp). */
  bad: string[];
  /** A stream that stays open by design (GET /mcp, subscriptions/listen): read briefly, then dropped. */
  openEnded: boolean;
}

interface Labelled<T> {
  readonly value: T;
  readonly bad: readonly string[];
}

const good = <T>(arb: Arbitrary<T>): Arbitrary<Labelled<T>> => arb.map((value) => ({ value, bad: [] }));
const badly = <T>(arb: Arbitrary<T>, why: string): Arbitrary<Labelled<T>> =>
  arb.map((value) => ({ value, bad: [why] }));
const weighted = <T>(weight: number, arbitrary: Arbitrary<T>) => ({ weight, arbitrary });
/** `arb` once in `outOf` draws, else undefined (fc.option's freq counts the other way, and bias skews fc.nat). */
const rarely = <T>(arb: Arbitrary<T>, outOf: number): Arbitrary<T | undefined> =>
  fc.oneof(weighted(outOf - 1, fc.constant(undefined)), weighted(1, arb));
/** -1 (the ordinary case) with weight `ordinary`, else `i` with weight `rare[i]`. */
const pick = (ordinary: number, ...rare: number[]): Arbitrary<number> =>
  fc.oneof(weighted(ordinary, fc.constant(-1)), ...rare.map((w, i) => weighted(w, fc.constant(i))));

// ---------------------------------------------------------------------------------------------------------------
// JSON values

const oddKey = fc.oneof(
  fc.constantFrom(
    '__proto__',
    'constructor',
    'prototype',
    'toString',
    'hasOwnProperty',
    'valueOf',
    'then',
    '',
    ' ',
    '$ref',
    '\u0000',
    '\u{1f4a5}',
    'ключ',
    '键',
    'e\u0301',
    '\ud800',
    'a'.repeat(300),
    'jsonrpc',
    'id',
    'method',
    '_meta',
  ),
  fc.string({ unit: 'binary', maxLength: 8 }),
);

const hugeNumber = fc
  .constantFrom(
    '1e400',
    '-1e400',
    '1e-400',
    '-0',
    '123456789012345678901234567890',
    '9007199254740993',
    '0.000000000000000000000000000001',
    '1E+308',
    `1${'0'.repeat(400)}`,
  )
  .map((text) => new RawJson(text));

const scalar: Arbitrary<Json> = fc.oneof(
  fc.constant(null),
  fc.boolean(),
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.string({ unit: 'binary', maxLength: 16 }),
  hugeNumber,
);

const { anyJson } = fc.letrec<{ anyJson: Json }>((tie) => ({
  anyJson: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    scalar,
    fc.array(tie('anyJson'), { maxLength: 4 }),
    fc
      .array(fc.tuple(fc.oneof(oddKey, fc.string({ maxLength: 6 })), tie('anyJson')), { maxLength: 4 })
      .map((entries) => new JsonEntries(entries)),
  ),
}));

/** A small object with odd keys: the shape of a random `arguments` or `_meta`. */
const oddObject: Arbitrary<Json> = fc
  .array(fc.tuple(oddKey, anyJson), { maxLength: 4 })
  .map((entries) => new JsonEntries(entries));

/** Nesting as text: arrays, objects, or both, balanced or cut short. */
const nested = (depths: Arbitrary<number>): Arbitrary<Labelled<Json>> =>
  fc.record({ depth: depths, unit: fc.constantFrom('[', '{"a":', '[{"a":'), cut: pick(3, 1) }).map((n) => {
    const close = n.unit === '[' ? ']' : n.unit === '{"a":' ? '}' : '}]';
    // A quarter are cut short: invalid JSON, which must be a parse error.
    const closes = n.cut === 0 ? Math.floor(n.depth / 2) : n.depth;
    const bad: string[] = n.cut === 0 ? ['malformed JSON (unbalanced nesting)'] : [];
    if (n.depth >= DEEP) bad.push(`nesting ${n.depth} deep`);
    return { value: new RawJson(`${n.unit.repeat(n.depth)}0${close.repeat(closes)}`), bad };
  });

export const deepJson = nested(fc.integer({ min: DEEP, max: 50_000 }));
const moderatelyNested = nested(fc.integer({ min: 1, max: 2_000 }));

const wideArray = fc.integer({ min: 1_000, max: 100_000 }).map((n) => new RawJson(`[${'0,'.repeat(n - 1)}0]`));
const wideObject = fc
  .integer({ min: 1_000, max: 20_000 })
  .map((n) => new RawJson(`{${Array.from({ length: n }, (_, i) => `"k${i}":${i}`).join(',')}}`));
/** Up to 1.5 MB of text: the fuzz config's body limit is 1 MB, so some go over it. */
const hugeString = fc
  .record({
    n: fc.integer({ min: 10_000, max: 1_500_000 }),
    unit: fc.constantFrom('x', 'é', '\\u0000', '\\ud83d\\udca5'),
  })
  .map(({ n, unit }) => new RawJson(`"${unit.repeat(Math.ceil(n / unit.length))}"`));
const longNumber = fc.integer({ min: 400, max: 100_000 }).map((n) => new RawJson('9'.repeat(n)));

/** The values that break parsers and validators: deep, wide, huge. */
export const hostileJson: Arbitrary<Labelled<Json>> = fc.oneof(
  weighted(3, deepJson),
  weighted(2, moderatelyNested),
  weighted(2, good(wideArray)),
  weighted(1, good(wideObject)),
  weighted(2, good(hugeString)),
  weighted(1, good(longNumber)),
  weighted(3, good(anyJson)),
);

const notString: Arbitrary<Json> = fc.oneof(
  fc.integer(),
  fc.double({ noNaN: true }),
  fc.boolean(),
  fc.constant(null),
  fc.array(scalar, { maxLength: 3 }),
  oddObject,
  hugeNumber,
);
const notObject: Arbitrary<Json> = fc.oneof(
  fc.integer(),
  fc.boolean(),
  fc.constant(null),
  fc.string({ maxLength: 8 }),
  fc.array(scalar, { maxLength: 3 }),
);
const notNumber: Arbitrary<Json> = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.boolean(),
  fc.constant(null),
  fc.array(scalar, { maxLength: 2 }),
  oddObject,
);
const notBoolean: Arbitrary<Json> = fc.oneof(fc.constantFrom('true', 'yes', 1, 0, null), oddObject);
const notArray: Arbitrary<Json> = fc.oneof(fc.string({ maxLength: 8 }), fc.integer(), fc.constant(null), oddObject);
/** The OpenAI-style APIs read null in an optional field as "not given": it is not a wrong type there. */
const notNull = (arb: Arbitrary<Json>): Arbitrary<Json> => arb.filter((value) => value !== null);

const OMIT = Symbol('omit');
type FieldValue = Json | typeof OMIT;

/** A field: mostly valid, now and then of the wrong type or left out (bad when it is required). */
function field(
  name: string,
  valid: Arbitrary<Json>,
  wrong: Arbitrary<Json>,
  required: boolean,
): Arbitrary<Labelled<FieldValue>> {
  return fc.oneof(
    weighted(14, good<FieldValue>(valid)),
    weighted(1, badly<FieldValue>(wrong, `wrong type: ${name}`)),
    weighted(
      required ? 1 : 3,
      fc.constant({ value: OMIT, bad: required ? [`missing: ${name}`] : [] } as Labelled<FieldValue>),
    ),
  );
}

/** A field that is valid whenever present (what mcplex passes on unchecked). */
function optional(valid: Arbitrary<Json>): Arbitrary<Labelled<FieldValue>> {
  return fc.oneof(
    weighted(2, good<FieldValue>(valid)),
    weighted(3, fc.constant({ value: OMIT, bad: [] } as Labelled<FieldValue>)),
  );
}

/** An object of labelled fields, with now and then an extra key holding a hostile value. */
function object(
  fields: Record<string, Arbitrary<Labelled<FieldValue>>>,
  extras = true,
): Arbitrary<Labelled<Record<string, Json>>> {
  const extra = extras ? rarely(fc.tuple(oddKey, hostileJson), 16) : fc.constant(undefined);
  return fc.record({ parts: fc.record(fields), extra }).map(({ parts, extra: added }) => {
    const value: Record<string, Json> = {};
    const bad: string[] = [];
    for (const [key, part] of Object.entries(parts)) {
      if (part.value !== OMIT) value[key] = part.value;
      bad.push(...part.bad);
    }
    if (!added) return { value, bad };
    const [key, hostile] = added;
    // A computed key defines an own property even for __proto__ (a plain assignment would set the prototype).
    return { value: { ...value, [key]: hostile.value }, bad: [...bad, ...hostile.bad] };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// MCP

const TOOLS = [
  'fixture__echo',
  'fixture__add',
  'fixture__fail',
  'fixture__pid',
  'fixture__param_headers',
  'fixture__confirm',
  'fixture__summarize',
  'fixture__slow',
];
const toolName = fc.oneof(
  weighted(8, fc.constantFrom(...TOOLS)),
  weighted(1, fc.constantFrom('nowhere__nothing', 'fixture__', '__proto__', '', 'FIXTURE__ECHO', 'fixture__echo ')),
  weighted(1, fc.string({ unit: 'grapheme', maxLength: 20 })),
);
const toolArguments: Arbitrary<Json> = fc.oneof(
  weighted(4, fc.record({ message: fc.string({ maxLength: 40 }) })),
  weighted(2, fc.record({ a: fc.double(), b: fc.integer() })),
  weighted(1, fc.record({ ms: fc.integer({ min: 0, max: 20 }), steps: fc.integer({ min: 1, max: 3 }) })),
  weighted(1, fc.record({ question: fc.string({ maxLength: 20 }) })),
  weighted(1, fc.record({ text: fc.string({ maxLength: 20 }) })),
  weighted(1, fc.record({ region: fc.string({ maxLength: 10 }) })),
  weighted(1, fc.constant({})),
  weighted(2, oddObject),
);
const URIS = [
  'mcplex://fixture/fixture://static/hello',
  'mcplex://fixture/fixture://items/1',
  'mcplex://fixture/fixture://items/%E0%A4%A',
  'mcplex://fixture/fixture://static/missing',
  'mcplex://nowhere/file:///x',
  'file:///etc/passwd',
  'fixture://static/hello',
  'mcplex://',
  '',
  ':::',
];
const uri = fc.oneof(
  weighted(6, fc.constantFrom(...URIS)),
  weighted(1, fc.webUrl()),
  weighted(1, fc.string({ unit: 'binary', maxLength: 30 })),
);
const cursor = fc.oneof(fc.string({ maxLength: 20 }), fc.base64String({ maxLength: 24 }));
const LEVELS = ['debug', 'info', 'notice', 'warning', 'error', 'critical', 'alert', 'emergency'];
const badLevel = fc.oneof(fc.constantFrom('loud', 'DEBUG', 'Info', '', 'warn', 'fatal', 'trace', ' info'), notString);
const stringRecord: Arbitrary<Json> = fc.dictionary(fc.string({ maxLength: 6 }), fc.string({ maxLength: 12 }), {
  maxKeys: 3,
});
const badStringRecord: Arbitrary<Json> = fc.oneof(notNull(notObject), fc.record({ name: notString }));
const requestId = fc.oneof(fc.nat(), fc.uuid(), fc.string({ maxLength: 8 }));
const capabilities: Arbitrary<Json> = fc.oneof(
  weighted(10, fc.constant({})),
  weighted(1, fc.constant({ elicitation: {} })),
  weighted(1, fc.constant({ sampling: {} })),
  weighted(1, fc.constant({ roots: { listChanged: true } })),
  weighted(1, oddObject),
);

type Era = 'legacy' | 'modern';

interface MethodSpec {
  method: string;
  eras: readonly Era[];
  /** The params field that 2026-07-28's Mcp-Name header repeats. */
  nameField?: 'name' | 'uri';
  params: Arbitrary<Labelled<Record<string, Json>>>;
  /** Params that may be left out entirely (every field optional). */
  paramsOptional: boolean;
}

const BOTH: readonly Era[] = ['legacy', 'modern'];
const paginated = (method: string, eras: readonly Era[] = BOTH): MethodSpec => ({
  method,
  eras,
  params: object({ cursor: field('params.cursor', cursor, notString, false) }),
  paramsOptional: true,
});
const byUri = (method: string, eras: readonly Era[]): MethodSpec => ({
  method,
  eras,
  nameField: 'uri',
  params: object({ uri: field('params.uri', uri, notString, true) }),
  paramsOptional: false,
});
const promptRef = fc.record({ type: fc.constant('ref/prompt'), name: fc.constantFrom('fixture__greet', 'nope') });
const resourceRef = fc.record({
  type: fc.constant('ref/resource'),
  uri: fc.constantFrom('mcplex://fixture/fixture://items/{id}', 'mcplex://nowhere/x'),
});

const METHODS: readonly MethodSpec[] = [
  {
    method: 'initialize',
    eras: ['legacy'],
    params: object({
      protocolVersion: field(
        'params.protocolVersion',
        fc.constantFrom(LEGACY_VERSION, '2025-06-18', '2025-03-26', '2024-11-05'),
        notString,
        true,
      ),
      capabilities: field('params.capabilities', capabilities, notObject, true),
      clientInfo: field(
        'params.clientInfo',
        fc.record({ name: fc.string({ maxLength: 10 }), version: fc.string({ maxLength: 5 }) }),
        fc.oneof(notObject, fc.record({ name: notString, version: fc.constant('1') })),
        true,
      ),
    }),
    paramsOptional: false,
  },
  { method: 'ping', eras: ['legacy'], params: object({}), paramsOptional: true },
  paginated('tools/list'),
  {
    method: 'tools/call',
    eras: BOTH,
    nameField: 'name',
    params: object({
      name: field('params.name', toolName, notString, true),
      arguments: field('params.arguments', toolArguments, notObject, false),
    }),
    paramsOptional: false,
  },
  paginated('resources/list'),
  paginated('resources/templates/list'),
  byUri('resources/read', BOTH),
  byUri('resources/subscribe', ['legacy']),
  byUri('resources/unsubscribe', ['legacy']),
  paginated('prompts/list'),
  {
    method: 'prompts/get',
    eras: BOTH,
    nameField: 'name',
    params: object({
      name: field('params.name', fc.constantFrom('fixture__greet', 'fixture__nope', ''), notString, true),
      arguments: field('params.arguments', stringRecord, badStringRecord, false),
    }),
    paramsOptional: false,
  },
  {
    method: 'completion/complete',
    eras: BOTH,
    params: object({
      ref: field(
        'params.ref',
        fc.oneof(promptRef, resourceRef),
        fc.oneof(
          notObject,
          fc.constant({ type: 'ref/other', name: 'x' }),
          fc.constant({ type: 'ref/prompt' }),
          fc.record({ type: fc.constant('ref/prompt'), name: notString }),
        ),
        true,
      ),
      argument: field(
        'params.argument',
        fc.record({ name: fc.constantFrom('name', 'id', 'other'), value: fc.string({ maxLength: 8 }) }),
        fc.oneof(
          notObject,
          fc.record({ name: notString, value: fc.constant('x') }),
          fc.record({ name: fc.constant('name'), value: notString }),
        ),
        true,
      ),
      context: field('params.context', fc.record({ arguments: stringRecord }), notObject, false),
    }),
    paramsOptional: false,
  },
  {
    method: 'logging/setLevel',
    eras: ['legacy'],
    params: object({ level: field('params.level', fc.constantFrom(...LEVELS), badLevel, true) }),
    paramsOptional: false,
  },
  { method: 'server/discover', eras: ['modern'], params: object({}), paramsOptional: true },
  {
    method: 'subscriptions/listen',
    eras: ['modern'],
    params: object({
      notifications: field(
        'params.notifications',
        fc
          .record(
            {
              toolsListChanged: fc.boolean(),
              promptsListChanged: fc.boolean(),
              resourcesListChanged: fc.boolean(),
              resourceSubscriptions: fc.array(fc.constantFrom(...URIS.slice(0, 5)), { maxLength: 3 }),
            },
            { requiredKeys: [] },
          )
          .map((filter) => filter as Json),
        fc.oneof(
          notObject,
          fc.record({ toolsListChanged: notBoolean }),
          fc.record({ resourceSubscriptions: notNull(notArray) }),
          fc.record({ resourceSubscriptions: fc.array(fc.integer(), { minLength: 1, maxLength: 2 }) }),
        ),
        true,
      ),
    }),
    paramsOptional: false,
  },
];

/** Methods a server never serves: the other side's requests, and made-up names. */
const FOREIGN_METHODS = ['sampling/createMessage', 'elicitation/create', 'roots/list', 'tasks/frobnicate'];

const NOTIFICATIONS: readonly { method: string; params: Arbitrary<Labelled<Record<string, Json>>> }[] = [
  { method: 'notifications/initialized', params: object({}, false) },
  {
    method: 'notifications/cancelled',
    params: object({
      requestId: field('params.requestId', requestId, oddObject, true),
      reason: field('params.reason', fc.string({ maxLength: 10 }), notString, false),
    }),
  },
  {
    method: 'notifications/progress',
    params: object({
      progressToken: field('params.progressToken', requestId, oddObject, true),
      progress: field('params.progress', fc.double({ noNaN: true }), notNumber, true),
      total: field('params.total', fc.nat(), notNumber, false),
    }),
  },
  { method: 'notifications/roots/list_changed', params: object({}, false) },
  { method: 'notifications/message', params: object({ level: field('level', fc.constant('info'), notString, true) }) },
];

/** The request envelope of 2026-07-28 (`_meta`), mostly right. */
function modernMeta(): Arbitrary<Labelled<Json>> {
  const base = (caps: Json, info: boolean): Record<string, Json> => ({
    'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
    'io.modelcontextprotocol/clientCapabilities': caps,
    ...(info ? { 'io.modelcontextprotocol/clientInfo': { name: 'fuzz', version: '1' } } : {}),
  });
  return fc.oneof(
    weighted(
      24,
      fc
        .record({
          caps: capabilities,
          info: fc.boolean(),
          token: rarely(requestId, 4),
          level: rarely(fc.constantFrom(...LEVELS), 8),
        })
        .map(({ caps, info, token, level }) => ({
          value: {
            ...base(caps, info),
            ...(token === undefined ? {} : { progressToken: token }),
            ...(level === undefined ? {} : { 'io.modelcontextprotocol/logLevel': level }),
          },
          bad: [],
        })),
    ),
    weighted(
      1,
      fc.constantFrom(LEGACY_VERSION, '2099-01-01', '', 'latest').map((version) => ({
        value: { ...base({}, true), 'io.modelcontextprotocol/protocolVersion': version },
        bad: ['envelope: wrong protocol version'],
      })),
    ),
    weighted(
      1,
      fc.constant({
        value: { 'io.modelcontextprotocol/protocolVersion': MODERN_VERSION },
        bad: ['envelope: no client capabilities'],
      }),
    ),
    weighted(
      1,
      notObject.map((caps) => ({ value: base(caps, true), bad: ['envelope: wrong type: clientCapabilities'] })),
    ),
    weighted(1, badly(notObject, 'wrong type: params._meta')),
    weighted(
      1,
      badly(
        oddObject.map((token) => ({ ...base({}, true), progressToken: token })),
        'wrong type: params._meta.progressToken',
      ),
    ),
  );
}

const legacyMeta: Arbitrary<Labelled<Json>> = fc.oneof(
  weighted(16, fc.constant({ value: {}, bad: [] })),
  weighted(2, good(fc.record({ progressToken: requestId }))),
  weighted(1, good(oddObject)),
  weighted(1, badly(notObject, 'wrong type: params._meta')),
);

/** A JSON-RPC id, mostly plain; the odd ones that JSON-RPC or MCP forbid are bad. */
const messageId: Arbitrary<Labelled<Json | typeof OMIT>> = fc.oneof(
  weighted(50, good<Json | typeof OMIT>(fc.nat())),
  weighted(2, good<Json | typeof OMIT>(fc.oneof(fc.uuid(), fc.string({ unit: 'grapheme', maxLength: 10 })))),
  weighted(
    2,
    good<Json | typeof OMIT>(
      fc.oneof(
        fc.integer({ min: -1_000_000, max: -1 }),
        fc.double({ noNaN: true, noDefaultInfinity: true }),
        hugeNumber,
      ),
    ),
  ),
  weighted(1, badly<Json | typeof OMIT>(fc.constant(null), 'id is null (MCP forbids it)')),
  weighted(1, badly<Json | typeof OMIT>(fc.oneof(oddObject, fc.array(scalar), fc.boolean()), 'id of a wrong type')),
);

interface McpMessage {
  message: Json;
  bad: string[];
  /** The method as sent (after mutation), when it is a string. */
  method: string | undefined;
  /** The spec's method, for counts. */
  label: string;
  /** The value Mcp-Name must repeat, when the method has one. */
  name: string | undefined;
  isRequest: boolean;
}

/** A request of one era: a method's params, the era's envelope, then mutations of the JSON-RPC frame. */
function mcpRequest(era: Era): Arbitrary<McpMessage> {
  const specs = METHODS.filter((spec) => spec.eras.includes(era));
  const outOfEra = METHODS.filter((spec) => !spec.eras.includes(era));
  const spec = fc.oneof(
    weighted(
      30,
      fc.constantFrom(...specs).map((s) => ({ spec: s, why: undefined as string | undefined })),
    ),
    weighted(
      1,
      fc.constantFrom(...outOfEra).map((s) => ({ spec: s, why: `method ${s.method} is not in ${era}` })),
    ),
  );
  return spec.chain(({ spec: s, why }) =>
    fc
      .record({
        params: s.params,
        meta: era === 'modern' ? modernMeta() : legacyMeta,
        id: messageId,
        jsonrpc: fc.oneof(
          weighted(60, good<Json | typeof OMIT>(fc.constant('2.0'))),
          weighted(1, badly<Json | typeof OMIT>(fc.constantFrom('1.0', 2, null, '2.0 '), 'jsonrpc is not "2.0"')),
          weighted(1, fc.constant({ value: OMIT, bad: ['jsonrpc is missing'] } as Labelled<Json | typeof OMIT>)),
        ),
        method: fc.oneof(
          weighted(40, good<Json | typeof OMIT>(fc.constant(s.method))),
          weighted(
            1,
            badly<Json | typeof OMIT>(
              fc.oneof(fc.constantFrom(...FOREIGN_METHODS), fc.constant(s.method.toUpperCase())),
              'unknown method',
            ),
          ),
          weighted(
            1,
            badly<Json | typeof OMIT>(fc.oneof(fc.integer(), fc.constant(null), oddObject), 'method is not a string'),
          ),
        ),
        shape: fc.oneof(
          weighted(30, fc.constant('object' as const)),
          weighted(1, fc.constant('omitted' as const)),
          weighted(1, fc.constant('wrong' as const)),
        ),
        wrongParams: notObject,
      })
      .map((m): McpMessage => {
        const bad = [...(why ? [why] : []), ...m.jsonrpc.bad, ...m.method.bad, ...m.id.bad];
        const message: Record<string, Json> = {};
        if (m.jsonrpc.value !== OMIT) message.jsonrpc = m.jsonrpc.value;
        if (m.id.value !== OMIT) message.id = m.id.value;
        if (m.method.value !== OMIT) message.method = m.method.value;
        let name: string | undefined;
        if (m.shape === 'object') {
          // Legacy requests usually leave out an empty _meta.
          const emptyMeta = era === 'legacy' && jsonText(m.meta.value) === '{}';
          const params: Record<string, Json> = emptyMeta ? m.params.value : { ...m.params.value, _meta: m.meta.value };
          message.params = params;
          bad.push(...m.params.bad, ...m.meta.bad);
          if (s.nameField) name = stringField(params, s.nameField);
        } else if (m.shape === 'wrong') {
          message.params = m.wrongParams;
          bad.push('wrong type: params');
        } else if (!s.paramsOptional || era === 'modern') {
          bad.push('params are missing');
        }
        return {
          message,
          bad: bad.filter((b) => b !== ''),
          method: typeof m.method.value === 'string' ? m.method.value : undefined,
          label: s.method,
          name,
          isRequest: true,
        };
      }),
  );
}

function mcpNotificationMessage(era: Era): Arbitrary<McpMessage> {
  return fc
    .record({
      spec: fc.oneof(
        weighted(6, fc.constantFrom(...NOTIFICATIONS)),
        weighted(
          1,
          fc.string({ maxLength: 10 }).map((suffix) => ({ method: `notifications/${suffix}`, params: object({}) })),
        ),
      ),
      meta: era === 'modern' ? modernMeta() : legacyMeta,
    })
    .chain(({ spec, meta }) =>
      spec.params.map((params): McpMessage => ({
        message: { jsonrpc: '2.0', method: spec.method, params: { ...params.value, _meta: meta.value } },
        // A notification gets no answer to carry an error, so nothing is demanded of it.
        bad: [],
        method: spec.method,
        label: 'notification',
        name: undefined,
        isRequest: false,
      })),
    );
}

// ---------------------------------------------------------------------------------------------------------------
// HTTP headers

/** A header that is mostly left alone; the labelled alternatives are mutations. */
type HeaderChoice = Labelled<string | undefined>;

const same = (value: string | undefined): Arbitrary<HeaderChoice> => fc.constant({ value, bad: [] });
const JSON_TYPES = ['application/json', 'application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json;'];
const NON_JSON_TYPES = [
  'text/plain',
  'application/x-www-form-urlencoded',
  'multipart/form-data; boundary=x',
  'text/event-stream',
  'application/xml',
  '',
];

const contentType: Arbitrary<HeaderChoice> = fc.oneof(
  weighted(50, same('application/json')),
  weighted(2, good<string | undefined>(fc.constantFrom(...JSON_TYPES))),
  weighted(1, same(undefined)),
  weighted(2, badly<string | undefined>(fc.constantFrom(...NON_JSON_TYPES), 'content type is not JSON')),
);
const mcpAccept: Arbitrary<HeaderChoice> = fc.oneof(
  weighted(30, same('application/json, text/event-stream')),
  weighted(
    2,
    good<string | undefined>(
      fc.constantFrom('application/json', 'text/event-stream', '*/*', '', 'text/html', 'application/*, text/*'),
    ),
  ),
  weighted(1, same(undefined)),
);
const origin: Arbitrary<HeaderChoice> = fc.oneof(
  weighted(60, same(undefined)),
  weighted(2, good<string | undefined>(fc.constantFrom('http://localhost:3000', 'http://127.0.0.1:{{port}}'))),
  weighted(
    1,
    badly<string | undefined>(
      fc.constantFrom('https://evil.example', 'http://evil.example:7070', 'null'),
      'foreign Origin',
    ),
  ),
  weighted(1, good<string | undefined>(fc.string({ unit: 'grapheme-ascii', maxLength: 20 }))),
);
const host: Arbitrary<HeaderChoice> = fc.oneof(
  weighted(60, same(undefined)),
  weighted(2, good<string | undefined>(fc.constantFrom('localhost:{{port}}', '127.0.0.1:{{port}}', 'localhost'))),
  weighted(
    1,
    badly<string | undefined>(
      fc.constantFrom('evil.example', 'evil.example:7070', 'localhost.evil.example'),
      'foreign Host',
    ),
  ),
  weighted(1, good<string | undefined>(fc.constantFrom('[::1]:{{port}}', 'LOCALHOST:{{port}}', 'localhost:99999'))),
);
const auth: Arbitrary<AuthChoice> = fc.oneof(
  weighted(20, fc.constant('plain' as const)),
  weighted(3, fc.constant('scoped' as const)),
  weighted(2, fc.constant('admin' as const)),
  weighted(3, fc.constantFrom<AuthChoice>('plain-lowercase', 'plain-uppercase', 'plain-spaces', 'plain-x-api-key')),
  weighted(3, fc.constantFrom<AuthChoice>('missing', 'malformed', 'unknown-key', 'basic', 'bearer-empty')),
);

/** A few more headers, odd ones included, that no route should care about. */
const extraHeaders: Arbitrary<Record<string, string>> = fc.oneof(
  weighted(12, fc.constant({})),
  weighted(
    1,
    fc.dictionary(
      fc.constantFrom('x-request-id', 'x-forwarded-for', 'cookie', 'x-mcplex-cache', 'user-agent', 'mcp-param-region'),
      fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
      { maxKeys: 3 },
    ),
  ),
);

interface CommonHeaders {
  headers: Record<string, string>;
  bad: string[];
}

function common(accept: Arbitrary<HeaderChoice> = same(undefined), type = contentType): Arbitrary<CommonHeaders> {
  return fc
    .record({ type, accept, origin, host, extra: extraHeaders })
    .map(({ type: t, accept: a, origin: o, host: h, extra }) => {
      const headers: Record<string, string> = { ...extra };
      const bad: string[] = [];
      for (const [name, choice] of [
        ['content-type', t],
        ['accept', a],
        ['origin', o],
        ['host', h],
      ] as const) {
        if (choice.value !== undefined) headers[name] = choice.value;
        bad.push(...choice.bad);
      }
      return { headers, bad };
    });
}

// ---------------------------------------------------------------------------------------------------------------
// /mcp

const sessionHeader: Arbitrary<HeaderChoice> = fc.oneof(
  weighted(40, same('{{session}}')),
  weighted(1, badly<string | undefined>(fc.uuid(), 'unknown session')),
  weighted(1, badly<string | undefined>(fc.constantFrom('', ' ', 'null', '{{session}}x'), 'unknown session')),
);
const legacyVersionHeader: Arbitrary<HeaderChoice> = fc.oneof(
  weighted(20, same(LEGACY_VERSION)),
  weighted(2, same(undefined)),
  weighted(1, badly<string | undefined>(fc.constantFrom('1999-01-01', 'garbage', ''), 'unsupported protocol version')),
);

function mcpPost(era: Era): Arbitrary<FuzzRequest> {
  return fc
    .record({
      msg: mcpRequest(era),
      common: common(mcpAccept),
      auth,
      session: sessionHeader,
      version: legacyVersionHeader,
      modernVersion: fc.oneof(
        weighted(30, same(MODERN_VERSION)),
        weighted(1, same(undefined)),
        weighted(
          1,
          badly<string | undefined>(fc.constantFrom(LEGACY_VERSION, '2099-01-01'), 'MCP-Protocol-Version disagrees'),
        ),
      ),
      methodHeader: pick(40, 1, 1),
      nameHeader: pick(40, 1, 1),
      otherName: fc.string({ unit: 'grapheme-ascii', maxLength: 12 }),
    })
    .map((r): FuzzRequest => {
      const headers = { ...r.common.headers };
      const bad = [...r.msg.bad, ...r.common.bad];
      if (era === 'legacy') {
        const initialize = r.msg.label === 'initialize' && r.msg.method === 'initialize';
        // initialize opens a session of its own (the runner ends it); everything else runs in a live one.
        if (!initialize) {
          if (r.session.value !== undefined) headers['mcp-session-id'] = r.session.value;
          bad.push(...r.session.bad);
          if (r.version.value !== undefined) headers['mcp-protocol-version'] = r.version.value;
          bad.push(...r.version.bad);
        }
      } else {
        if (r.modernVersion.value === undefined) bad.push('MCP-Protocol-Version is missing');
        else headers['mcp-protocol-version'] = r.modernVersion.value;
        bad.push(...r.modernVersion.bad);
        if (r.msg.method !== undefined) {
          if (r.methodHeader === 0) bad.push('Mcp-Method is missing');
          else if (r.methodHeader === 1) {
            headers['mcp-method'] = 'tools/list' === r.msg.method ? 'prompts/list' : 'tools/list';
            bad.push('Mcp-Method disagrees');
          } else headers['mcp-method'] = r.msg.method;
        }
        if (r.msg.name !== undefined) {
          if (r.nameHeader === 0) bad.push('Mcp-Name is missing');
          else if (r.nameHeader === 1 && r.otherName !== r.msg.name) {
            headers['mcp-name'] = r.otherName;
            bad.push('Mcp-Name disagrees');
          } else headers['mcp-name'] = mcpNameHeader(r.msg.name);
        }
      }
      const listen = r.msg.method === 'subscriptions/listen';
      return {
        route: `mcp:${era}:${r.msg.label}`,
        method: 'POST',
        path: '/mcp',
        headers,
        auth: r.auth,
        body: jsonText(r.msg.message),
        bad: [...new Set(bad)],
        openEnded: listen,
      };
    });
}

/** Mcp-Name as 2026-07-28 writes it: a value HTTP cannot carry as it is goes Base64-encoded in a sentinel. */
function mcpNameHeader(name: string): string {
  if (/^[\x21-\x7e]([\x20-\x7e]*[\x21-\x7e])?$/.test(name) || name === '') return name;
  return `=?base64?${Buffer.from(name, 'utf8').toString('base64')}?=`;
}

function mcpNotification(era: Era): Arbitrary<FuzzRequest> {
  return fc.record({ msg: mcpNotificationMessage(era), common: common(mcpAccept), auth }).map((r) => ({
    route: `mcp:${era}:notification`,
    method: 'POST',
    path: '/mcp',
    headers: {
      ...r.common.headers,
      ...(era === 'legacy'
        ? { 'mcp-session-id': '{{session}}', 'mcp-protocol-version': LEGACY_VERSION }
        : { 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': r.msg.method ?? '' }),
    },
    auth: r.auth,
    body: jsonText(r.msg.message),
    bad: r.common.bad,
    openEnded: false,
  }));
}

function mcpBatch(era: Era): Arbitrary<FuzzRequest> {
  const member = fc.oneof(weighted(3, mcpRequest(era)), weighted(1, mcpNotificationMessage(era)));
  return fc
    .record({ members: fc.array(member, { maxLength: 4 }), common: common(mcpAccept), auth, inSession: pick(4, 1) })
    .map((r) => {
      const headers: Record<string, string> = { ...r.common.headers };
      if (era === 'legacy') {
        if (r.inSession !== 0) headers['mcp-session-id'] = '{{session}}';
        headers['mcp-protocol-version'] = LEGACY_VERSION;
      } else headers['mcp-protocol-version'] = MODERN_VERSION;
      const bad = [...r.common.bad];
      if (r.members.length === 0) bad.push('empty batch');
      // A batch of nothing but bad requests must get nothing but client errors.
      else if (r.members.every((m) => m.isRequest && m.bad.length > 0)) bad.push('every member is bad input');
      return {
        route: `mcp:${era}:batch`,
        method: 'POST',
        path: '/mcp',
        headers,
        auth: r.auth,
        body: jsonText(r.members.map((m) => m.message)),
        bad,
        openEnded: false,
      };
    });
}

/** Bodies that are not a JSON-RPC message at all: malformed text, bare values, hostile JSON. */
const mcpRawBody: Arbitrary<FuzzRequest> = fc
  .record({
    body: fc.oneof(
      badly(
        fc.constantFrom('', '{', '{"jsonrpc": "2.0", "id": 1,', '[{]', 'nul', '\u0000', '\ufeff{}', '{"a":1}}'),
        'malformed JSON',
      ),
      badly(fc.constantFrom('null', '123', '"str"', 'true', '{}', '[1]', '[null]'), 'not a JSON-RPC message'),
      hostileJson.map(({ value, bad }) => ({ value: jsonText(value), bad: [...bad, 'not a JSON-RPC message'] })),
      badly(
        fc.string({ unit: 'binary', maxLength: 64 }).filter((s) => !isJson(s)),
        'malformed JSON',
      ),
    ),
    era: fc.constantFrom<Era>('legacy', 'modern'),
    common: common(mcpAccept),
    auth,
  })
  .map((r) => ({
    route: 'mcp:raw',
    method: 'POST',
    path: '/mcp',
    headers: {
      ...r.common.headers,
      ...(r.era === 'legacy'
        ? { 'mcp-session-id': '{{session}}', 'mcp-protocol-version': LEGACY_VERSION }
        : { 'mcp-protocol-version': MODERN_VERSION, 'mcp-method': 'tools/list' }),
    },
    auth: r.auth,
    body: r.body.value,
    bad: [...r.body.bad, ...r.common.bad],
    openEnded: false,
  }));

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

const mcpStream: Arbitrary<FuzzRequest> = fc
  .record({
    method: fc.constantFrom('GET', 'DELETE'),
    session: fc.oneof(weighted(6, sessionHeader), weighted(1, badly(fc.constant(undefined), 'no session'))),
    accept: fc.oneof(
      weighted(8, same('text/event-stream')),
      weighted(1, good<string | undefined>(fc.constantFrom('application/json', '*/*', ''))),
    ),
    lastEventId: rarely(
      fc.oneof(
        fc.uuid().map((id) => `{{session}}_${id}`),
        fc.string({ unit: 'grapheme-ascii', maxLength: 40 }),
      ),
      4,
    ),
    version: legacyVersionHeader,
    common: common(same(undefined), same(undefined)),
    auth,
  })
  .map((r) => {
    const headers: Record<string, string> = { ...r.common.headers };
    if (r.session.value !== undefined) headers['mcp-session-id'] = r.session.value;
    if (r.method === 'GET' && r.accept.value !== undefined) headers.accept = r.accept.value;
    if (r.lastEventId !== undefined) headers['last-event-id'] = r.lastEventId;
    if (r.version.value !== undefined) headers['mcp-protocol-version'] = r.version.value;
    return {
      route: `mcp:${r.method.toLowerCase()}`,
      method: r.method,
      path: '/mcp',
      headers,
      auth: r.auth,
      bad: [...r.session.bad, ...r.version.bad, ...r.common.bad],
      openEnded: r.method === 'GET',
    };
  });

const mcpOtherMethod: Arbitrary<FuzzRequest> = fc
  .record({ method: fc.constantFrom('PUT', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'PURGE'), auth })
  .map((r) => ({
    route: 'mcp:other-method',
    method: r.method,
    path: '/mcp',
    headers: {},
    auth: r.auth,
    ...(r.method === 'PUT' || r.method === 'PATCH' ? { body: '{}' } : {}),
    bad: [`method ${r.method} on /mcp`],
    openEnded: false,
  }));

// ---------------------------------------------------------------------------------------------------------------
// /v1

const model = fc.oneof(
  weighted(12, good<FieldValue>(fc.constantFrom('small', 'tiny', 'large'))),
  weighted(1, good<FieldValue>(fc.constantFrom('nope', 'SMALL', 'small ', '__proto__'))),
  weighted(1, badly<FieldValue>(fc.oneof(fc.constant(''), notString), 'model is not a model name')),
  weighted(1, fc.constant({ value: OMIT, bad: ['model is missing'] } as Labelled<FieldValue>)),
);
const chatMessage: Arbitrary<Json> = fc.oneof(
  weighted(10, fc.record({ role: fc.constant('user'), content: fc.string({ maxLength: 60 }) })),
  weighted(
    2,
    fc.record({ role: fc.constantFrom('system', 'developer', 'assistant'), content: fc.string({ maxLength: 20 }) }),
  ),
  weighted(
    1,
    fc.record({
      role: fc.constant('user'),
      content: fc.array(fc.record({ type: fc.constant('text'), text: fc.string({ maxLength: 10 }) }), {
        maxLength: 2,
      }),
    }),
  ),
  weighted(1, fc.record({ role: fc.constantFrom('tool', 'wizard', ''), content: anyJson })),
  weighted(1, oddObject),
);
const messages = fc.oneof(
  weighted(14, good<FieldValue>(fc.array(chatMessage, { minLength: 1, maxLength: 4 }))),
  weighted(1, badly<FieldValue>(fc.oneof(fc.constant([]), notArray), 'messages is not a non-empty array')),
  weighted(1, fc.constant({ value: OMIT, bad: ['messages are missing'] } as Labelled<FieldValue>)),
);
const mcpOptions: Arbitrary<Labelled<FieldValue>> = fc.oneof(
  weighted(12, fc.constant({ value: OMIT, bad: [] } as Labelled<FieldValue>)),
  weighted(
    4,
    object(
      {
        servers: field(
          'mcp.servers',
          fc.constantFrom(['*'], ['fixture']),
          fc.oneof(notNull(notArray), fc.constant(['nope']), fc.constant([''])),
          false,
        ),
        tools: field('mcp.tools', fc.constantFrom(['fixture__echo'], ['*__pid', '*__fail']), fc.constant([5]), false),
        max_steps: field(
          'mcp.max_steps',
          fc.integer({ min: 1, max: 3 }),
          fc.oneof(notNull(notNumber), fc.constantFrom(0, -1, 33, 1.5)),
          false,
        ),
        require_approval: field(
          'mcp.require_approval',
          fc.constantFrom('never', 'always'),
          fc.oneof(fc.constant('sometimes'), notNull(notString)),
          false,
        ),
        top_k: field(
          'mcp.top_k',
          fc.integer({ min: 1, max: 5 }),
          fc.oneof(notNull(notNumber), fc.constantFrom(0, -2, 2.5)),
          false,
        ),
      },
      false,
    ),
  ),
  weighted(1, fc.constant({ value: true, bad: [] } as Labelled<FieldValue>)),
  weighted(
    1,
    badly<FieldValue>(fc.oneof(fc.string({ maxLength: 5 }), fc.integer(), fc.constant([1])), 'mcp is not an object'),
  ),
  weighted(1, badly<FieldValue>(fc.constant({ servers: ['*'], frobnicate: 1 }), 'unknown field in mcp')),
);

const conversationField: Arbitrary<Labelled<FieldValue>> = fc.oneof(
  weighted(12, fc.constant({ value: OMIT, bad: [] } as Labelled<FieldValue>)),
  weighted(3, fc.constant({ value: '{{conversation}}', bad: [] } as Labelled<FieldValue>)),
  weighted(1, badly<FieldValue>(fc.oneof(fc.constant('conv_nope'), fc.uuid()), 'unknown conversation')),
  weighted(
    1,
    badly<FieldValue>(fc.oneof(fc.integer(), fc.constant([1]), fc.constant(true)), 'conversation is not an id'),
  ),
);

const chatBody = object({
  model,
  messages,
  stream: field('stream', fc.boolean(), notBoolean, false),
  stream_options: optional(fc.oneof(fc.record({ include_usage: fc.boolean() }), fc.constant(null))),
  temperature: optional(fc.constantFrom(0, 0.7, 1)),
  max_tokens: optional(fc.integer({ min: 1, max: 64 })),
  mcp: mcpOptions,
  conversation: conversationField,
});

function v1Post(
  route: (body: Record<string, Json>) => string,
  path: string,
  body: Arbitrary<Labelled<Record<string, Json>>>,
): Arbitrary<FuzzRequest> {
  return fc.record({ body, common: common(), auth, rawBody: pick(40, 1, 1) }).map((r) => ({
    route: route(r.body.value),
    method: 'POST',
    path,
    headers: r.common.headers,
    auth: r.auth,
    // Now and then the body is not an object at all.
    body: r.rawBody === 0 ? '[1,2]' : r.rawBody === 1 ? '{"model":' : jsonText(r.body.value),
    bad: [
      ...r.common.bad,
      ...(r.rawBody === 0 ? ['body is not an object'] : r.rawBody === 1 ? ['malformed JSON'] : r.body.bad),
    ],
    openEnded: false,
  }));
}

const chat = v1Post(
  (body) =>
    body.mcp !== undefined ? 'v1:chat+mcp' : body.conversation !== undefined ? 'v1:chat+conversation' : 'v1:chat',
  '/v1/chat/completions',
  chatBody,
);

const embeddings = v1Post(
  () => 'v1:embeddings',
  '/v1/embeddings',
  object({
    model,
    input: field(
      'input',
      fc.oneof(
        fc.string({ maxLength: 30 }),
        fc.array(fc.string({ maxLength: 10 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.nat(1000), { minLength: 1, maxLength: 4 }),
      ),
      fc.constant(null),
      true,
    ),
    encoding_format: optional(fc.constantFrom('float', 'base64')),
  }),
);

const item: Arbitrary<Json> = fc.oneof(
  weighted(
    6,
    fc.record({ role: fc.constantFrom('user', 'assistant', 'system'), content: fc.string({ maxLength: 20 }) }),
  ),
  weighted(1, anyJson),
);
const conversationPaths = fc.oneof(
  weighted(4, fc.constant('{{conversation}}')),
  weighted(1, fc.constantFrom('conv_nope', '%E0%A4%A', '%', '%zz', '..', '%2F', '__proto__')),
  weighted(
    1,
    fc.string({ unit: 'grapheme-ascii', maxLength: 12 }).map((s) => encodeURIComponent(s)),
  ),
);

const conversations: Arbitrary<FuzzRequest> = fc
  .record({
    kind: fc.constantFrom('create', 'list', 'get', 'delete', 'add-items', 'list-items', 'odd'),
    id: conversationPaths,
    body: object({
      metadata: field(
        'metadata',
        fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 20 }), { maxKeys: 3 }),
        fc.oneof(notNull(notObject), fc.constant({ k: 5 })),
        false,
      ),
      items: field('items', fc.array(item, { maxLength: 3 }), notNull(notArray), false),
    }),
    addBody: object({
      items: field('items', fc.array(item, { minLength: 1, maxLength: 3 }), notArray, true),
      expected_version: field(
        'expected_version',
        fc.nat(3),
        fc.oneof(fc.constant(-1), fc.constant(1.5), notNull(notNumber)),
        false,
      ),
    }),
    query: fc.option(
      fc.constantFrom(
        'limit=2',
        'limit=0',
        'limit=abc',
        'limit=1000',
        'order=asc',
        'order=sideways',
        'after=%E0%A4%A',
        'after=5',
      ),
      { nil: undefined },
    ),
    common: common(),
    auth,
  })
  .map((r): FuzzRequest => {
    const q = r.query === undefined ? '' : `?${r.query}`;
    const base = { headers: r.common.headers, auth: r.auth, openEnded: false };
    const idBad = r.id === '{{conversation}}' ? [] : ['unknown conversation'];
    switch (r.kind) {
      case 'create':
        return {
          ...base,
          route: 'v1:conversations:create',
          method: 'POST',
          path: '/v1/conversations',
          body: jsonText(r.body.value),
          bad: [...r.common.bad, ...r.body.bad],
        };
      case 'list':
        return { ...base, route: 'v1:conversations:list', method: 'GET', path: `/v1/conversations${q}`, bad: [] };
      case 'get':
        return { ...base, route: 'v1:conversations:get', method: 'GET', path: `/v1/conversations/${r.id}`, bad: idBad };
      case 'delete':
        return {
          ...base,
          route: 'v1:conversations:delete',
          method: 'DELETE',
          path: `/v1/conversations/${r.id}`,
          bad: idBad,
        };
      case 'add-items':
        return {
          ...base,
          route: 'v1:conversations:add-items',
          method: 'POST',
          path: `/v1/conversations/${r.id}/items`,
          body: jsonText(r.addBody.value),
          bad: [...idBad, ...r.common.bad, ...r.addBody.bad],
        };
      case 'list-items':
        return {
          ...base,
          route: 'v1:conversations:list-items',
          method: 'GET',
          path: `/v1/conversations/${r.id}/items${q}`,
          bad: idBad,
        };
      default:
        return {
          ...base,
          route: 'v1:conversations:odd',
          method: 'PUT',
          path: `/v1/conversations/${r.id}/items/extra`,
          body: '{}',
          bad: ['no such conversation route'],
        };
    }
  });

const models: Arbitrary<FuzzRequest> = fc
  .record({ method: fc.oneof(weighted(6, fc.constant('GET')), weighted(1, fc.constantFrom('POST', 'DELETE'))), auth })
  .map((r) => ({
    route: 'v1:models',
    method: r.method,
    path: '/v1/models',
    headers: {},
    auth: r.auth,
    bad: r.method === 'GET' ? [] : [`${r.method} /v1/models`],
    openEnded: false,
  }));

// ---------------------------------------------------------------------------------------------------------------
// /admin

const keyIds = fc.oneof(
  weighted(3, fc.stringMatching(/^[a-z0-9]{12}$/)),
  weighted(2, fc.constantFrom('%E0%A4%A', '%', '%zz', '%C0%AF', '%00', '%FF%FE', '..%2F..', '')),
  weighted(
    1,
    fc.string({ unit: 'grapheme-ascii', maxLength: 16 }).map((s) => encodeURIComponent(s)),
  ),
);

const admin: Arbitrary<FuzzRequest> = fc
  .record({
    kind: fc.constantFrom('list', 'create', 'revoke', 'usage', 'series', 'requests', 'odd'),
    id: keyIds,
    body: object({
      name: field('name', fc.string({ minLength: 1, maxLength: 20 }), notString, true),
      models: field(
        'models',
        fc.constantFrom(['small'], ['tiny', 'large'], ['nope']),
        fc.oneof(notArray, fc.constant([1])),
        false,
      ),
      servers: field('servers', fc.constantFrom(['fixture'], ['nope']), fc.oneof(notArray, fc.constant([1])), false),
      tools: field('tools', fc.constantFrom(['*__echo'], ['[x]'], ['']), fc.oneof(notArray, fc.constant([1])), false),
      admin: field('admin', fc.boolean(), notNull(notBoolean), false),
      rpm: field('rpm', fc.integer({ min: 1, max: 1000 }), fc.oneof(notNull(notNumber)), false),
      tpm: field('tpm', fc.integer({ min: -5, max: 100_000 }), notNull(notNumber), false),
      maxConcurrent: field('maxConcurrent', fc.integer({ min: 1, max: 10 }), notNull(notNumber), false),
      expiresAt: field(
        'expiresAt',
        fc.constantFrom(null, 4_102_444_800_000, '2100-01-01T00:00:00Z', 'soon', 1, -1),
        fc.oneof(fc.boolean(), oddObject, fc.constant([1])),
        false,
      ),
    }),
    query: fc.option(
      fc.constantFrom(
        'since=0',
        'since=abc',
        'until=%E0%A4%A',
        'subject=x&model=small',
        'since=1e400',
        'model=__proto__',
      ),
      { nil: undefined },
    ),
    seriesQuery: fc.constantFrom(
      { query: '', bad: [] },
      { query: 'since=1h&bucket=60s', bad: [] },
      { query: 'since=7d&bucket=1s', bad: ['more than 2,000 buckets'] },
      { query: 'since=1h&bucket=999', bad: ['a bucket under a second'] },
      { query: 'since=1h&bucket=5x', bad: ['a bucket that is no duration'] },
      { query: 'since=1h&until=2h', bad: ['since after until'] },
      { query: 'bucket=1e400', bad: ['a bucket that is no duration'] },
      { query: 'since=1h&bucket=1h&subject=%E0%A4%A', bad: [] },
      { query: `since=1h&model=${'m'.repeat(300)}`, bad: ['a filter over 256 characters'] },
    ),
    requestsQuery: fc.constantFrom(
      { query: '', bad: [] },
      { query: 'limit=1', bad: [] },
      { query: 'limit=0', bad: ['limit below 1'] },
      { query: 'limit=501', bad: ['limit above 500'] },
      { query: 'limit=-1', bad: ['limit below 1'] },
      { query: 'limit=1.5', bad: ['limit not whole'] },
      { query: 'before=0', bad: ['before below 1'] },
      { query: 'before=abc', bad: ['before not a number'] },
      { query: 'before=99999999999999999999', bad: ['before too large'] },
      { query: 'route=mcp&status=ok', bad: [] },
      { query: `target=${'t'.repeat(300)}`, bad: ['a filter over 256 characters'] },
      { query: 'since=abc', bad: ['since not a moment'] },
      { query: 'subject=__proto__', bad: [] },
    ),
    method: fc.constantFrom('PUT', 'PATCH', 'GET', 'POST'),
    common: common(),
    auth: fc.oneof(weighted(4, fc.constant<AuthChoice>('admin')), weighted(2, auth)),
  })
  .map((r): FuzzRequest => {
    const base = { headers: r.common.headers, auth: r.auth, openEnded: false };
    switch (r.kind) {
      case 'list':
        return { ...base, route: 'admin:keys:list', method: 'GET', path: '/admin/keys', bad: [] };
      case 'create':
        return {
          ...base,
          route: 'admin:keys:create',
          method: 'POST',
          path: '/admin/keys',
          body: jsonText(r.body.value),
          bad: [...r.common.bad, ...r.body.bad],
        };
      case 'revoke':
        return {
          ...base,
          route: 'admin:keys:revoke',
          method: 'DELETE',
          path: `/admin/keys/${r.id}`,
          // None of these ids names a live key: the fuzz never revokes the keys it runs with.
          bad: ['no such key'],
        };
      case 'usage':
        return {
          ...base,
          route: 'admin:usage',
          method: 'GET',
          path: `/admin/usage${r.query === undefined ? '' : `?${r.query}`}`,
          bad: [],
        };
      case 'series':
        return {
          ...base,
          route: 'admin:usage:series',
          method: 'GET',
          path: `/admin/usage/series?${r.seriesQuery.query}`,
          bad: [...r.seriesQuery.bad],
        };
      case 'requests':
        return {
          ...base,
          route: 'admin:requests',
          method: 'GET',
          path: `/admin/requests?${r.requestsQuery.query}`,
          bad: [...r.requestsQuery.bad],
        };
      default:
        return {
          ...base,
          route: 'admin:odd',
          method: r.method,
          path: r.method === 'GET' || r.method === 'POST' ? `/admin/${r.id}` : '/admin/keys',
          ...(r.method === 'GET' ? {} : { body: '{}' }),
          bad: ['no such admin route'],
        };
    }
  });

// ---------------------------------------------------------------------------------------------------------------
// Everything else

const otherRoutes: Arbitrary<FuzzRequest> = fc
  .record({
    path: fc.constantFrom(
      '/',
      '/mcp/',
      '/MCP',
      '//mcp',
      '/mcp?x=%E0%A4%A',
      '/v1',
      '/v1/',
      '/v1/unknown',
      '/v1/chat/completions/extra',
      '/admin',
      '/admin/',
      '/ui',
      '/ui/',
      '/ui/index.html',
      '/ui/..%2F..%2Fpackage.json',
      '/ui/../package.json',
      '/ui/assets/',
      '/ui/assets/nope.js',
      '/ui/%00',
      '/healthz',
      '/readyz',
      '/metrics',
      '/%',
      '/%E0%A4%A',
      '/..%2F..%2Fetc%2Fpasswd',
    ),
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'OPTIONS', 'HEAD'),
    common: common(),
    auth,
  })
  .map((r) => ({
    route: 'other',
    method: r.method,
    path: r.path,
    headers: r.common.headers,
    auth: r.auth,
    ...(r.method === 'POST' || r.method === 'PUT' ? { body: '{}' } : {}),
    bad: [],
    openEnded: false,
  }));

/** Any request to mcplex: the mix is weighted towards /mcp and chat completions, where most of the code is. */
export function fuzzRequest(): Arbitrary<FuzzRequest> {
  return fc.oneof(
    weighted(24, mcpPost('legacy')),
    weighted(24, mcpPost('modern')),
    weighted(3, mcpNotification('legacy')),
    weighted(2, mcpNotification('modern')),
    weighted(3, mcpBatch('legacy')),
    weighted(2, mcpBatch('modern')),
    weighted(4, mcpRawBody),
    weighted(4, mcpStream),
    weighted(1, mcpOtherMethod),
    weighted(12, chat),
    weighted(3, embeddings),
    weighted(1, models),
    weighted(5, conversations),
    weighted(5, admin),
    weighted(2, otherRoutes),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Known holes

const MODERN_META = {
  'io.modelcontextprotocol/protocolVersion': MODERN_VERSION,
  'io.modelcontextprotocol/clientCapabilities': {},
  'io.modelcontextprotocol/clientInfo': { name: 'fuzz', version: '1' },
};
const JSON_HEADERS = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
const modernHeaders = (method: string, name?: string): Record<string, string> => ({
  ...JSON_HEADERS,
  'mcp-protocol-version': MODERN_VERSION,
  'mcp-method': method,
  ...(name === undefined ? {} : { 'mcp-name': name }),
});
const legacyHeaders = { ...JSON_HEADERS, 'mcp-session-id': '{{session}}', 'mcp-protocol-version': LEGACY_VERSION };
const deepText = (depth: number) => `${'['.repeat(depth)}0${']'.repeat(depth)}`;

/**
 * Inputs every run sends first, in each mode: the holes found so far (see the fuzz suite's history), so that a
 * bounded run cannot miss them by chance. Random generation covers the same ground, less reliably.
 */
export const KNOWN_INPUTS: readonly FuzzRequest[] = [
  {
    route: 'v1:chat',
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'application/json' },
    auth: 'plain',
    body: `{"model":"small","messages":[{"role":"user","content":"x"}],"x":${deepText(DEEP)}}`,
    bad: [`nesting ${DEEP} deep`],
    openEnded: false,
  },
  {
    route: 'mcp:modern:tools/call',
    method: 'POST',
    path: '/mcp',
    headers: modernHeaders('tools/call', 'fixture__echo'),
    auth: 'plain',
    body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fixture__echo","arguments":{"message":${deepText(DEEP)}},"_meta":${JSON.stringify(MODERN_META)}}}`,
    bad: [`nesting ${DEEP} deep`],
    openEnded: false,
  },
  {
    route: 'mcp:legacy:tools/call',
    method: 'POST',
    path: '/mcp',
    headers: legacyHeaders,
    auth: 'plain',
    body: JSON.stringify({
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'fixture__echo', arguments: [1] },
    }),
    bad: ['wrong type: params.arguments'],
    openEnded: false,
  },
  {
    route: 'mcp:modern:tools/list',
    method: 'POST',
    path: '/mcp',
    headers: modernHeaders('tools/list'),
    auth: 'plain',
    body: JSON.stringify({ jsonrpc: '2.0', id: 3, method: 'tools/list', params: { cursor: 5, _meta: MODERN_META } }),
    bad: ['wrong type: params.cursor'],
    openEnded: false,
  },
  {
    route: 'mcp:legacy:resources/read',
    method: 'POST',
    path: '/mcp',
    headers: legacyHeaders,
    auth: 'plain',
    body: JSON.stringify({ jsonrpc: '2.0', id: 4, method: 'resources/read', params: { uri: {} } }),
    bad: ['wrong type: params.uri'],
    openEnded: false,
  },
  {
    route: 'admin:keys:revoke',
    method: 'DELETE',
    path: '/admin/keys/%E0%A4%A',
    headers: {},
    auth: 'admin',
    bad: ['no such key'],
    openEnded: false,
  },
  {
    route: 'mcp:legacy:batch',
    method: 'POST',
    path: '/mcp',
    headers: legacyHeaders,
    auth: 'plain',
    body: '[]',
    bad: ['empty batch'],
    openEnded: false,
  },
  {
    route: 'v1:models',
    method: 'GET',
    path: '/v1/models',
    headers: {},
    auth: 'plain-lowercase',
    bad: [],
    openEnded: false,
  },
  {
    route: 'v1:chat',
    method: 'POST',
    path: '/v1/chat/completions',
    headers: { 'content-type': 'text/plain' },
    auth: 'plain',
    body: JSON.stringify({ model: 'small', messages: [{ role: 'user', content: 'x' }] }),
    bad: ['content type is not JSON'],
    openEnded: false,
  },
];
