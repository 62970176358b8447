// The OpenAI-compatible provider (OpenAI, vLLM, Ollama, llama.cpp server, LM Studio, …): the request goes out
// as the client sent it, with the backend's model name and key; the response comes back as it is.
import type { DeploymentConfig } from '../../config/llm-schema.js';

export function openAiHeaders(deployment: DeploymentConfig): Record<string, string> {
  return {
    'content-type': 'application/json',
    ...(deployment.apiKey ? { authorization: `Bearer ${deployment.apiKey}` } : {}),
    ...deployment.headers,
  };
}

/** The client's body with the backend's model name; every other field travels unchanged. */
export function openAiBody(body: Record<string, unknown>, deployment: DeploymentConfig): string {
  return JSON.stringify({ ...body, model: deployment.model });
}
