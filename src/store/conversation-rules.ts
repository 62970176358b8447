// What every ConversationStore agrees on: the form of ids, and the checks an append or a page request must pass
// before anything is written, so that bad arguments fail the same way in every implementation.

import { randomBytes } from 'node:crypto';
import { CONVERSATION_ROLES, type ConversationPage, type ConversationRole, type ItemPage } from './store.js';

const ROLES: ReadonlySet<string> = new Set(CONVERSATION_ROLES);

export function newConversationId(): string {
  return `conv_${randomBytes(16).toString('hex')}`;
}

export function newItemId(): string {
  return `item_${randomBytes(16).toString('hex')}`;
}

export function isConversationRole(value: unknown): value is ConversationRole {
  return typeof value === 'string' && ROLES.has(value);
}

/** A message ready to store: its role, and its JSON text (which is also how the stored copy is made). */
export interface PreparedMessage {
  role: ConversationRole;
  json: string;
}

/** Checks and serialises every message first, so that a bad one fails the whole append before anything is written. */
export function prepareMessages(messages: readonly Record<string, unknown>[]): PreparedMessage[] {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new TypeError('an append needs at least one message');
  }
  return messages.map((message, index) => {
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      throw new TypeError(`message ${index} is not an object`);
    }
    const role = message.role;
    if (!isConversationRole(role)) {
      throw new TypeError(`message ${index} has role ${JSON.stringify(role)}; expected one of ${CONVERSATION_ROLES}`);
    }
    return { role, json: JSON.stringify(message) };
  });
}

export function checkExpectedVersion(expectedVersion: number | undefined): void {
  if (expectedVersion !== undefined && (!Number.isInteger(expectedVersion) || expectedVersion < 0)) {
    throw new RangeError(`expectedVersion must be a whole number ≥ 0, got ${expectedVersion}`);
  }
}

export function checkConversationPage(page: ConversationPage): void {
  checkLimit(page.limit);
}

export function checkItemPage(page: ItemPage): void {
  checkLimit(page.limit);
  if (page.after !== undefined && (!Number.isInteger(page.after) || page.after < 0)) {
    throw new RangeError(`after must be a seq (a whole number ≥ 0), got ${page.after}`);
  }
  if (page.order !== 'asc' && page.order !== 'desc') {
    throw new RangeError(`order must be "asc" or "desc", got ${JSON.stringify(page.order)}`);
  }
}

function checkLimit(limit: number): void {
  if (!Number.isInteger(limit) || limit < 1) throw new RangeError(`limit must be a whole number ≥ 1, got ${limit}`);
}
