// A store or cache URL as it may be shown: the password replaced, so that messages and logs never carry it.

/** `postgres://user:secret@host/db` with the password replaced by `***`. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== '') parsed.password = '***';
    return parsed.toString();
  } catch {
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}
