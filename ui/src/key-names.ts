// The names of API keys by id, for pages that show who made a request (usage, requests).
import { useEffect, useState } from 'preact/hooks';
import { api } from './api.js';

/** Key ids as their names, where the key list is readable (with API keys); `server:<key>` stays as it is. */
export function useKeyNames(): Map<string, string> {
  const [names, setNames] = useState(new Map<string, string>());
  useEffect(() => {
    api<{ data: { id: string; name: string }[] }>('admin/keys')
      .then((k) => setNames(new Map(k.data.map((key) => [key.id, key.name]))))
      .catch(() => {});
  }, []);
  return names;
}
