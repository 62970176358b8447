// Streamed tool calls arrive in pieces (`delta.tool_calls`, by index); this puts them back together.
import type { ToolCall, ToolCallDelta } from './types.js';

export function addToolCallDeltas(calls: ToolCall[], deltas: readonly ToolCallDelta[] | undefined): void {
  for (const part of deltas ?? []) {
    const call = (calls[part.index] ??= { id: '', type: 'function', function: { name: '', arguments: '' } });
    if (part.id) call.id = part.id;
    if (part.function?.name) call.function.name += part.function.name;
    if (part.function?.arguments) call.function.arguments += part.function.arguments;
  }
}
