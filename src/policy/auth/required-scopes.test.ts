import { describe, expect, it } from 'vitest';
import { ANONYMOUS } from './keys.js';
import type { Principal } from './keys.js';
import { scopeRequirements } from './required-scopes.js';

const user = (...grants: string[]): Principal => ({
  kind: 'user',
  id: 'corp:alice',
  name: 'alice',
  scopes: {},
  limits: {},
  grants: new Set(grants),
});

describe('scopeRequirements', () => {
  it('is nothing to check without server or tool scopes', () => {
    expect(scopeRequirements()).toBeUndefined();
    expect(scopeRequirements({}, {})).toBeUndefined();
  });

  it('unites a server’s scopes with those of every tool pattern the exposed name matches', () => {
    const requirements = scopeRequirements(
      { github: ['repo:read'] },
      { 'github__create_*': ['repo:write'], '*__delete_*': ['admin:delete', 'repo:write'] },
    )!;
    expect(requirements.needed('github', 'github__list_issues')).toEqual(['repo:read']);
    expect(new Set(requirements.needed('github', 'github__create_issue'))).toEqual(
      new Set(['repo:read', 'repo:write']),
    );
    expect(new Set(requirements.needed('github', 'github__delete_repo'))).toEqual(
      new Set(['repo:read', 'admin:delete', 'repo:write']),
    );
    expect(requirements.needed('fs', 'fs__read')).toEqual([]);
    // Prompts and resources: the server's only.
    expect(requirements.needed('github', undefined)).toEqual(['repo:read']);
  });

  it('names what a token lacks, and holds API keys and anonymous callers to none of it', () => {
    const requirements = scopeRequirements({ github: ['repo:read'] }, { 'github__create_*': ['repo:write'] })!;
    expect(requirements.missing(user('repo:read'), 'github', 'github__create_issue')).toEqual(['repo:write']);
    expect(requirements.missing(user('repo:read', 'repo:write'), 'github', 'github__create_issue')).toEqual([]);
    expect(requirements.missing(user(), 'github', undefined)).toEqual(['repo:read']);
    const key: Principal = { kind: 'key', id: 'k', name: 'k', scopes: {}, limits: {} };
    expect(requirements.missing(key, 'github', 'github__create_issue')).toEqual([]);
    expect(requirements.missing(ANONYMOUS, 'github', 'github__create_issue')).toEqual([]);
  });
});
