// Queues: depth, rates and state of every queue; add one; each links to its queue page.
import { clear, detailRate, dialog, features, h, num, parseJSON, problem, rate, replicas, stateText, table, vhostOptions } from '../ui.js';

export const queueHref = (q) => `#/queues/${encodeURIComponent(q.vhost)}/${encodeURIComponent(q.name)}`;

export default {
  title: 'Queues',
  async render(main, ctx) {
    const body = h('div', { id: 'queues' });
    const load = async () => {
      let list;
      try { list = await ctx.api.get('/queues'); } catch (e) { clear(body, problem(e, 'Queues')); return; }
      if (!Array.isArray(list)) list = list.items || [];
      // Where each queue runs matters in a cluster only: the column shows when a queue has
      // replicas (a quorum queue's members).
      const clustered = list.some((q) => (q.members || []).length);
      clear(body, table([
        { label: 'Vhost', value: (q) => q.vhost },
        { label: 'Name', value: (q) => h('a', { href: queueHref(q), class: 'queue-link' }, q.name) },
        { label: 'Type', value: (q) => q.type || 'classic' },
        clustered && { label: 'Node', value: (q) => replicas(q) },
        { label: 'Features', value: (q) => features(q) },
        { label: 'State', value: (q) => stateText(q.state) },
        { label: 'Ready', value: (q) => num(q.messages_ready), num: true },
        { label: 'Unacked', value: (q) => num(q.messages_unacknowledged), num: true },
        { label: 'Total', value: (q) => h('span', { class: 'depth' }, num(q.messages)), num: true },
        { label: 'Consumers', value: (q) => num(q.consumers), num: true },
        { label: 'Incoming', value: (q) => rate(detailRate(q.message_stats, 'publish')), num: true },
        { label: 'Deliver / get', value: (q) => rate(detailRate(q.message_stats, 'deliver_get')), num: true },
        { label: 'Ack', value: (q) => rate(detailRate(q.message_stats, 'ack')), num: true },
      ].filter(Boolean), list, { empty: 'No queues.', key: (q) => `${q.vhost}|${q.name}` }));
    };
    main.append(h('div', { class: 'pagehead' }, h('h1', {}, 'Queues'),
      h('div', { class: 'actions' }, h('button', { class: 'primary', id: 'add-queue', onclick: () => add(ctx, load) }, 'Add queue'))),
    h('section', { class: 'card' }, body));
    ctx.every(5000, load);
  },
};

async function add(ctx, reload) {
  const vhosts = await vhostOptions(ctx.api);
  return dialog({
    title: 'Add queue',
    id: 'queue-form',
    fields: [
      { name: 'vhost', label: 'Virtual host', type: 'select', options: vhosts, value: vhosts[0] },
      { name: 'name', label: 'Name', required: true },
      { name: 'durable', label: 'Durable', type: 'checkbox', value: true },
      { name: 'auto_delete', label: 'Auto-delete', type: 'checkbox' },
      { name: 'arguments', label: 'Arguments (JSON object)', type: 'textarea', placeholder: '{"x-dead-letter-exchange": "", "x-dead-letter-routing-key": "orders.dlq"}' },
    ],
    submit: 'Add queue',
    async onSubmit(v) {
      await ctx.api.put(`/queues/${ctx.api.seg(v.vhost)}/${ctx.api.seg(v.name)}`, {
        durable: v.durable, auto_delete: v.auto_delete, arguments: parseJSON(v.arguments, 'Arguments'),
      });
      ctx.toast(`Queue ${v.name} added`);
      await reload();
    },
  });
}
