// `npm run loadtest -- --host URL [--users 20] [--duration 60]`: Locust's users (MCP sessions in both eras, chats,
// conversation turns) against any mcplex deployment, headless; prints Locust's summary.
import { parseArgs } from 'node:util';
import { runLocust } from './locust.js';

const { values } = parseArgs({
  options: {
    host: { type: 'string', default: 'http://127.0.0.1:7070' },
    users: { type: 'string', default: '20' },
    duration: { type: 'string', default: '60' },
    csv: { type: 'string' },
  },
});
const { code } = await runLocust({
  host: values.host!,
  users: Number(values.users),
  duration: Number(values.duration),
  ...(values.csv ? { csv: values.csv } : {}),
});
process.exit(code ?? 1);
