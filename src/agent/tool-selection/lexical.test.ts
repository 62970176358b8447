import { describe, expect, it } from 'vitest';
import { lexicalScores, tokenize } from './lexical.js';

describe('tokenize', () => {
  it('splits identifiers at underscores, dashes, dots, slashes and camelCase humps', () => {
    expect(tokenize('git_create_branch')).toEqual(['git', 'create', 'branch']);
    expect(tokenize('list-pull-requests')).toEqual(['list', 'pull', 'request']);
    expect(tokenize('readFile')).toEqual(['read', 'file']);
    expect(tokenize('parseHTMLDocument')).toEqual(['parse', 'html', 'document']);
    expect(tokenize('fs.read/notes.txt')).toEqual(['fs', 'read', 'note', 'txt']);
  });

  it('drops stop words and folds common suffixes', () => {
    expect(tokenize('What is the weather in Oslo?')).toEqual(['weather', 'oslo']);
    expect(tokenize('Reading files and directories')).toEqual(['read', 'file', 'directory']);
    expect(tokenize('queries commits')).toEqual(['query', 'commit']);
  });
});

describe('lexicalScores', () => {
  const tools = [
    { name: 'read_file', description: 'Read the complete contents of a file from the file system.' },
    { name: 'write_file', description: 'Create a new file or overwrite an existing file.' },
    { name: 'send_email', description: 'Send an email message to one or more recipients.' },
    { name: 'git_commit', description: 'Record changes to the repository with a commit message.' },
    { name: 'ping' },
  ];

  it('scores the tool that shares the rarest words highest', () => {
    const scores = lexicalScores(tools, 'read the file notes.txt');
    const best = scores.indexOf(Math.max(...scores));
    expect(tools[best]?.name).toBe('read_file');
    expect(scores[2]).toBe(0);
  });

  it('weighs words of the name above words of the description', () => {
    const [inName = 0, inDescription = 0] = lexicalScores(
      [
        { name: 'archive', description: 'store old records' },
        { name: 'store', description: 'archive old records' },
      ],
      'archive',
    );
    expect(inName).toBeGreaterThan(inDescription);
    expect(inDescription).toBeGreaterThan(0);
  });

  it('gives zeros when the query has no words or there are no tools', () => {
    expect(lexicalScores(tools, 'the of a')).toEqual([0, 0, 0, 0, 0]);
    expect(lexicalScores([], 'read')).toEqual([]);
  });
});
