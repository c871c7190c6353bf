import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import protobuf from 'protobufjs';

/**
 * The part of OTLP's trace messages (opentelemetry-proto, `collector/trace/v1`, `trace/v1`,
 * `resource/v1`, `common/v1`) this receiver reads, with their field numbers; whatever else a sender
 * writes is skipped, as protobuf readers do.
 */
const OTLP_TRACES_PROTO = `
syntax = "proto3";
package otlp;
message ExportTraceServiceRequest { repeated ResourceSpans resource_spans = 1; }
message ResourceSpans { Resource resource = 1; repeated ScopeSpans scope_spans = 2; }
message Resource { repeated KeyValue attributes = 1; }
message ScopeSpans { repeated Span spans = 2; }
message Span {
  bytes trace_id = 1;
  bytes span_id = 2;
  bytes parent_span_id = 4;
  string name = 5;
  int32 kind = 6;
  fixed64 start_time_unix_nano = 7;
  fixed64 end_time_unix_nano = 8;
  repeated KeyValue attributes = 9;
  repeated Link links = 13;
  Status status = 15;
}
message Link { bytes trace_id = 1; bytes span_id = 2; }
message Status { string message = 2; int32 code = 3; }
message KeyValue { string key = 1; AnyValue value = 2; }
message AnyValue {
  oneof value {
    string string_value = 1;
    bool bool_value = 2;
    int64 int_value = 3;
    double double_value = 4;
  }
}
`;

const requestType = protobuf.parse(OTLP_TRACES_PROTO).root.lookupType('otlp.ExportTraceServiceRequest');

/** OTLP's span kinds, by number. */
export const SpanKind = { internal: 1, server: 2, client: 3, producer: 4, consumer: 5 } as const;

/** One span as a process exported it. */
export interface ReceivedSpan {
  /** The exporting process's `service.name`. */
  service: string;
  traceId: string;
  spanId: string;
  /** None for a root span. */
  parentSpanId: string | undefined;
  name: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, string | number | boolean>;
  links: { traceId: string; spanId: string }[];
  /** 0 unset, 1 ok, 2 error. */
  statusCode: number;
}

interface DecodedValue {
  stringValue?: string;
  boolValue?: boolean;
  intValue?: string;
  doubleValue?: number;
}
interface DecodedKeyValue {
  key: string;
  value?: DecodedValue;
}
interface DecodedSpan {
  traceId: Uint8Array;
  spanId: Uint8Array;
  parentSpanId?: Uint8Array;
  name: string;
  kind?: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes?: DecodedKeyValue[];
  links?: { traceId: Uint8Array; spanId: Uint8Array }[];
  status?: { code?: number };
}
interface DecodedRequest {
  resourceSpans?: {
    resource?: { attributes?: DecodedKeyValue[] };
    scopeSpans?: { spans?: DecodedSpan[] }[];
  }[];
}

function attributesOf(pairs: DecodedKeyValue[] = []): ReceivedSpan['attributes'] {
  const attributes: ReceivedSpan['attributes'] = {};
  for (const { key, value } of pairs) {
    // int64 comes out as a string (longs: String, for the nanosecond times): an attribute's fits a number.
    const integer = value?.intValue === undefined ? undefined : Number(value.intValue);
    const scalar = value?.stringValue ?? value?.boolValue ?? integer ?? value?.doubleValue;
    if (scalar !== undefined) attributes[key] = scalar;
  }
  return attributes;
}

const hex = (bytes: Uint8Array | undefined) =>
  bytes && bytes.length > 0 ? Buffer.from(bytes).toString('hex') : undefined;

function spansOf(body: Buffer): ReceivedSpan[] {
  const message = requestType.decode(body);
  const request = requestType.toObject(message, { longs: String }) as DecodedRequest;
  return (request.resourceSpans ?? []).flatMap(({ resource, scopeSpans = [] }) => {
    const service = String(attributesOf(resource?.attributes)['service.name']);
    return scopeSpans.flatMap(({ spans = [] }) =>
      spans.map((span) => ({
        service,
        traceId: hex(span.traceId) ?? '',
        spanId: hex(span.spanId) ?? '',
        parentSpanId: hex(span.parentSpanId),
        name: span.name,
        kind: span.kind ?? 0,
        startNs: BigInt(span.startTimeUnixNano),
        endNs: BigInt(span.endTimeUnixNano),
        attributes: attributesOf(span.attributes),
        links: (span.links ?? []).map((link) => ({ traceId: hex(link.traceId)!, spanId: hex(link.spanId)! })),
        statusCode: span.status?.code ?? 0,
      })),
    );
  });
}

async function bodyOf(req: IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks);
  return req.headers['content-encoding'] === 'gzip' ? gunzipSync(body) : body;
}

export interface FakeOtlpReceiver {
  /** `http://127.0.0.1:<port>`: what OTEL_EXPORTER_OTLP_ENDPOINT names. */
  url: string;
  /** Every span received so far. */
  spans(): ReceivedSpan[];
  /** The spans of one trace received so far. */
  trace(traceId: string): ReceivedSpan[];
  /** Requests it could not read as OTLP/HTTP protobuf (answered 400). */
  refused(): number;
  close(): Promise<void>;
}

/**
 * An OpenTelemetry collector's OTLP/HTTP trace endpoint (`POST /v1/traces`, binary protobuf, gzip or
 * not), as Jaeger and the Collector serve it on port 4318: it keeps the spans and answers with an
 * empty `ExportTraceServiceResponse`.
 */
export async function startFakeOtlpReceiver(): Promise<FakeOtlpReceiver> {
  const received: ReceivedSpan[] = [];
  let refused = 0;
  const server = createServer((req, res) => {
    void (async () => {
      const protobufPost =
        req.method === 'POST' &&
        req.url === '/v1/traces' &&
        req.headers['content-type'] === 'application/x-protobuf';
      try {
        if (!protobufPost) throw new Error(`not an OTLP/HTTP protobuf export: ${req.method} ${req.url}`);
        received.push(...spansOf(await bodyOf(req)));
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      } catch {
        refused += 1;
        res.writeHead(400).end();
      }
    })();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    spans: () => [...received],
    trace: (traceId) => received.filter((span) => span.traceId === traceId),
    refused: () => refused,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
