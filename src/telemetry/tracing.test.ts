import { describe, expect, it } from 'vitest';
import { currentTracing, startTracing, tracesUrl, tracingSettings } from './tracing.js';

const identity = { version: '1.2.3', instance: 'replica-1' };

describe('tracingSettings', () => {
  it('is off without a telemetry section or OTEL_TRACES_EXPORTER=otlp', () => {
    expect(tracingSettings(undefined, identity, {})).toBeUndefined();
    expect(tracingSettings(undefined, identity, { OTEL_EXPORTER_OTLP_ENDPOINT: 'http://collector:4318' })).toBe(
      undefined,
    );
  });

  it('is on with OTEL_TRACES_EXPORTER=otlp, named by OTEL_SERVICE_NAME, the exporter finding its own URL', () => {
    expect(
      tracingSettings(undefined, identity, { OTEL_TRACES_EXPORTER: 'otlp', OTEL_SERVICE_NAME: 'gateway' }),
    ).toEqual({
      url: undefined,
      headers: {},
      serviceName: 'gateway',
      serviceVersion: '1.2.3',
      instance: 'replica-1',
      sampleRatio: undefined,
      captureContent: false,
    });
  });

  it('takes the section’s fields over the environment’s', () => {
    const settings = tracingSettings(
      { endpoint: 'http://collector:4318', serviceName: 'mine', sampleRatio: 0.25, captureContent: true },
      identity,
      { OTEL_SERVICE_NAME: 'theirs' },
    );
    expect(settings).toMatchObject({
      url: 'http://collector:4318/v1/traces',
      serviceName: 'mine',
      sampleRatio: 0.25,
      captureContent: true,
    });
  });

  it('is off with OTEL_SDK_DISABLED=true or OTEL_TRACES_EXPORTER=none, whatever the section says', () => {
    expect(tracingSettings({}, identity, { OTEL_SDK_DISABLED: 'true' })).toBeUndefined();
    expect(tracingSettings({}, identity, { OTEL_TRACES_EXPORTER: 'none' })).toBeUndefined();
    expect(tracingSettings({}, identity, { OTEL_SDK_DISABLED: 'false' })?.serviceName).toBe('mcplex');
  });
});

describe('tracesUrl', () => {
  it('adds /v1/traces to a base URL and keeps a full one', () => {
    expect(tracesUrl('http://c:4318')).toBe('http://c:4318/v1/traces');
    expect(tracesUrl('http://c:4318/otlp')).toBe('http://c:4318/otlp/v1/traces');
    expect(tracesUrl('http://c:4318/otlp/v1/traces')).toBe('http://c:4318/otlp/v1/traces');
  });
});

describe('startTracing', () => {
  it('leaves the process untraced when off, and sets and clears the tracer when on', async () => {
    expect(await startTracing(undefined, identity, {})).toBeUndefined();
    expect(currentTracing()).toBeUndefined();
    // Nothing sampled, so nothing is exported to the address that answers nobody.
    const tracing = await startTracing({ endpoint: 'http://127.0.0.1:9', sampleRatio: 0 }, identity, {});
    expect(currentTracing()).toBeDefined();
    const seen: Record<string, string>[] = [];
    const info = { operation: 'chat', model: 'm', provider: 'openai', deployment: 'm#0', attempt: 1 } as const;
    await tracing!.llmAttempt(
      undefined,
      { ...info, baseUrl: 'http://127.0.0.1:1/v1' },
      (headers) => Promise.resolve(seen.push(headers)),
      () => ({ status: 200 }),
    );
    expect(seen[0]!.traceparent).toMatch(/^00-[0-9a-f]{32}-[0-9a-f]{16}-00$/);
    await tracing!.shutdown();
    expect(currentTracing()).toBeUndefined();
  });
});
