import { createMemorySessions } from './memory-sessions.js';
import { describeSessionsContract } from '../sessions-contract.js';

describeSessionsContract('memory', async (bounds) => createMemorySessions(bounds));
