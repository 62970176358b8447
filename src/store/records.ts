// The records of usage and of the recent-requests log as the stores return them: plain data with no imports, so
// that the web console (ui/) shares these shapes with the server.

export interface UsageTotal {
  subject: string;
  model: string;
  requests: number;
  promptTokens: number;
  completionTokens: number;
}

export interface UsageBucket extends UsageTotal {
  /** The start of the bucket, milliseconds since the epoch. */
  at: number;
}

/** One request in the bounded log of recent requests (for the console): what was asked, by whom, how it went. */
export interface RequestLogEntry {
  /** Milliseconds since the epoch when the request ended. */
  at: number;
  /** `chat`, `embeddings`, `agent` (tool-running chat), `sampling`, or `mcp` for a call to an MCP server. */
  route: string;
  /** The API key id, `server:<key>` for an MCP server's identity, or null when anonymous. */
  subject: string | null;
  /** The model asked for, or `<server>/<name>` for MCP: the tool, the prompt or the resource URI. */
  target: string;
  /** The HTTP status for /v1 routes; `ok`, `error` (the tool said so), `failed` or `refused` for MCP calls. */
  status: string;
  latencyMs: number;
  promptTokens: number;
  completionTokens: number;
  /** The replica that served it. */
  replica: string;
}

export interface LoggedRequest extends RequestLogEntry {
  /** Increasing in the order entries were appended (per store); the paging cursor. */
  id: number;
}
