// Policies: list, add or update, delete.
import { clear, dialog, h, parseJSON, problem, table, vhostOptions } from '../ui.js';

export default {
  title: 'Policies',
  async render(main, ctx) {
    const body = h('div', { id: 'policies' });
    const load = async () => {
      let list;
      try { list = await ctx.api.get('/policies'); } catch (e) { clear(body, problem(e, 'Policies')); return; }
      clear(body, table([
        { label: 'Vhost', value: (p) => p.vhost },
        { label: 'Name', value: (p) => p.name },
        { label: 'Pattern', value: (p) => h('code', {}, p.pattern) },
        { label: 'Apply to', value: (p) => p['apply-to'] },
        { label: 'Definition', value: (p) => h('code', {}, JSON.stringify(p.definition)) },
        { label: 'Priority', value: (p) => p.priority, num: true },
        { label: '', value: (p) => h('button', { class: 'small danger delete-policy', onclick: () => remove(ctx, p, load) }, 'Delete') },
      ], list, { empty: 'No policies.', key: (p) => `${p.vhost}|${p.name}` }));
    };
    main.append(h('div', { class: 'pagehead' }, h('h1', {}, 'Policies'),
      h('div', { class: 'actions' }, h('button', { class: 'primary', id: 'add-policy', onclick: () => add(ctx, load) }, 'Add / update policy'))),
    h('section', { class: 'card' }, body));
    ctx.every(5000, load);
  },
};

async function add(ctx, reload) {
  const vhosts = await vhostOptions(ctx.api);
  return dialog({
    title: 'Add or update policy', id: 'policy-form',
    fields: [
      { name: 'vhost', label: 'Virtual host', type: 'select', options: vhosts, value: vhosts[0] },
      { name: 'name', label: 'Name', required: true },
      { name: 'pattern', label: 'Pattern (regexp on names)', required: true, placeholder: '^orders\\.' },
      { name: 'apply_to', label: 'Apply to', type: 'select', value: 'all', options: [['all', 'Exchanges and queues'], ['queues', 'Queues'], ['exchanges', 'Exchanges']] },
      { name: 'priority', label: 'Priority', type: 'number', value: '0' },
      { name: 'definition', label: 'Definition (JSON object)', type: 'textarea', required: true, placeholder: '{"max-length": 1000, "dead-letter-exchange": "dlx"}' },
    ],
    submit: 'Save policy',
    async onSubmit(v) {
      await ctx.api.put(`/policies/${ctx.api.seg(v.vhost)}/${ctx.api.seg(v.name)}`, {
        pattern: v.pattern, 'apply-to': v.apply_to, priority: Number(v.priority) || 0, definition: parseJSON(v.definition, 'Definition'),
      });
      ctx.toast(`Policy ${v.name} saved`);
      await reload();
    },
  });
}

function remove(ctx, p, reload) {
  return dialog({
    title: 'Delete policy', id: 'confirm-delete', intro: `Delete policy ${p.name} in ${p.vhost}?`, submit: 'Delete', danger: true,
    async onSubmit() {
      await ctx.api.del(`/policies/${ctx.api.seg(p.vhost)}/${ctx.api.seg(p.name)}`);
      ctx.toast(`Policy ${p.name} deleted`);
      await reload();
    },
  });
}
