// Definitions: export the broker's topology and users as RabbitMQ's JSON, import such a file.
import { actionError, clear, h, num, table } from '../ui.js';

const SECTIONS = ['users', 'vhosts', 'permissions', 'topic_permissions', 'policies', 'parameters', 'queues', 'exchanges', 'bindings'];

export default {
  title: 'Definitions',
  async render(main, ctx) {
    const exportOut = h('div', { id: 'export-result' });
    const importOut = h('div', { id: 'import-result' });
    const file = h('input', { type: 'file', id: 'import-file', accept: 'application/json,.json' });
    let blobURL = null; // the last export's download, released on the next export or on leaving
    ctx.onStop(() => blobURL && URL.revokeObjectURL(blobURL));
    const exportBtn = h('button', { class: 'primary', id: 'export', onclick: async () => {
      exportBtn.disabled = true;
      try {
        const defs = await ctx.api.get('/definitions');
        const text = JSON.stringify(defs, null, 2);
        if (blobURL) URL.revokeObjectURL(blobURL);
        const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
        blobURL = url;
        const name = `warren-definitions-${new Date().toISOString().slice(0, 19).replace(/[:T]/g, '-')}.json`;
        const link = h('a', { href: url, download: name, id: 'export-link' }, `Download ${name} again`);
        clear(exportOut,
          table([{ label: 'Section', value: (r) => r[0] }, { label: 'Entries', value: (r) => num(r[1]), num: true }],
            SECTIONS.filter((s) => Array.isArray(defs[s])).map((s) => [s, defs[s].length]), { key: (r) => r[0] }),
          h('p', {}, link),
          h('details', {}, h('summary', {}, 'Show JSON'), h('pre', { id: 'export-json' }, text)));
        link.click();
      } catch (e) {
        clear(exportOut, h('div', { class: 'notice err action-error', role: 'alert' }, actionError(e)));
      } finally {
        exportBtn.disabled = false;
      }
    } }, 'Export definitions');
    const importBtn = h('button', { class: 'primary', id: 'import', onclick: async () => {
      const f = file.files[0];
      if (!f) { clear(importOut, h('p', { class: 'error' }, 'Choose a definitions file first.')); return; }
      importBtn.disabled = true;
      try {
        const text = await f.text();
        try { JSON.parse(text); } catch (e) { throw new Error(`${f.name} is not JSON: ${e.message}`); }
        await ctx.api.post('/definitions', text);
        clear(importOut, h('p', { class: 'state-ok import-ok' }, `Imported ${f.name}.`));
      } catch (e) {
        clear(importOut, h('div', { class: 'notice err action-error', role: 'alert' }, actionError(e)));
      } finally {
        importBtn.disabled = false;
      }
    } }, 'Import');
    main.append(
      h('div', { class: 'pagehead' }, h('h1', {}, 'Definitions')),
      h('div', { class: 'grid' },
        h('section', { class: 'card' }, h('h2', {}, 'Export'),
          h('p', { class: 'muted' }, 'Users, virtual hosts, permissions, policies, exchanges, queues and bindings as RabbitMQ\'s definitions JSON.'),
          exportBtn, exportOut),
        h('section', { class: 'card' }, h('h2', {}, 'Import'),
          h('p', { class: 'muted' }, 'Merges a definitions file (Warren\'s or RabbitMQ\'s) into the broker: existing queues, exchanges and bindings are kept as they are.'),
          h('label', {}, 'Definitions file', file), importBtn, importOut)));
  },
};
