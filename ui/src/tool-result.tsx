// A tool's result as an MCP client shows it: each content block (text, image, audio, embedded resource, resource
// link), the structured content, and the tool's own errors marked as such.

interface ContentBlock {
  type: string;
  text?: string;
  data?: string;
  mimeType?: string;
  uri?: string;
  name?: string;
  resource?: { uri: string; mimeType?: string; text?: string; blob?: string };
}

export interface ToolResult {
  content?: ContentBlock[];
  structuredContent?: unknown;
  isError?: boolean;
  resultType?: string;
  inputRequests?: unknown;
}

/** Only these image and audio types are shown inline, from data: URLs (the page's CSP allows nothing else). */
const SAFE_IMAGE = /^image\/(png|jpeg|gif|webp)$/;
const SAFE_AUDIO = /^audio\/(wav|x-wav|mpeg|ogg|webm)$/;

function Block({ block }: { block: ContentBlock }) {
  if (block.type === 'text') return <pre class="text">{block.text}</pre>;
  if (block.type === 'image' && block.data && SAFE_IMAGE.test(block.mimeType ?? '')) {
    return <img class="result-image" alt="image result" src={`data:${block.mimeType};base64,${block.data}`} />;
  }
  if (block.type === 'audio' && block.data && SAFE_AUDIO.test(block.mimeType ?? '')) {
    return <audio controls src={`data:${block.mimeType};base64,${block.data}`} />;
  }
  if (block.type === 'resource' && block.resource) {
    return (
      <div class="resource">
        <code>{block.resource.uri}</code>
        {block.resource.text !== undefined ? (
          <pre class="text">{block.resource.text}</pre>
        ) : (
          <p>
            <small>binary, {block.resource.mimeType ?? 'unknown type'}</small>
          </p>
        )}
      </div>
    );
  }
  if (block.type === 'resource_link') {
    return (
      <p class="resource">
        link: <code>{block.uri}</code> {block.name}
      </p>
    );
  }
  return <pre class="text">{JSON.stringify(block, null, 2)}</pre>;
}

export function ToolResultView({ result }: { result: ToolResult }) {
  if (result.resultType === 'input_required') {
    return (
      <div class="result">
        <p>The tool asks for input the console cannot give (elicitation, sampling or roots):</p>
        <pre class="text">{JSON.stringify(result.inputRequests, null, 2)}</pre>
      </div>
    );
  }
  return (
    <div class={result.isError ? 'result is-error' : 'result'} data-testid="tool-result">
      {result.isError && <p class="error">The tool reported an error:</p>}
      {(result.content ?? []).map((block, i) => (
        <Block key={i} block={block} />
      ))}
      {result.structuredContent !== undefined && (
        <details open>
          <summary>Structured content</summary>
          <pre class="text">{JSON.stringify(result.structuredContent, null, 2)}</pre>
        </details>
      )}
    </div>
  );
}
