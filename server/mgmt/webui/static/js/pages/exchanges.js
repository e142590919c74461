// Exchanges: list, add, delete, publish a message.
import { clear, detailRate, dialog, features, h, parseJSON, problem, rate, table, vhostOptions } from '../ui.js';
import { publish, publishFields } from './publish.js';

const label = (x) => (x.name === '' ? '(AMQP default)' : x.name);
const builtin = (x) => x.name === '' || x.name.startsWith('amq.');

export default {
  title: 'Exchanges',
  async render(main, ctx) {
    const body = h('div', { id: 'exchanges' });
    const load = async () => {
      let list;
      try { list = await ctx.api.get('/exchanges'); } catch (e) { clear(body, problem(e, 'Exchanges')); return; }
      if (!Array.isArray(list)) list = list.items || [];
      clear(body, table([
        { label: 'Vhost', value: (x) => x.vhost },
        { label: 'Name', value: (x) => label(x) },
        { label: 'Type', value: (x) => x.type },
        { label: 'Features', value: (x) => features(x) },
        { label: 'In', value: (x) => rate(detailRate(x.message_stats, 'publish_in')), num: true },
        { label: 'Out', value: (x) => rate(detailRate(x.message_stats, 'publish_out')), num: true },
        { label: '', value: (x) => h('div', { class: 'actions' },
          h('button', { class: 'small publish-exchange', onclick: () => publishTo(ctx, x) }, 'Publish'),
          builtin(x) ? null : h('button', { class: 'small danger delete-exchange', onclick: () => remove(ctx, x, load) }, 'Delete')) },
      ], list, { empty: 'No exchanges.', key: (x) => `${x.vhost}|${x.name}` }));
    };
    main.append(h('div', { class: 'pagehead' }, h('h1', {}, 'Exchanges'),
      h('div', { class: 'actions' }, h('button', { class: 'primary', id: 'add-exchange', onclick: () => add(ctx, load) }, 'Add exchange'))),
    h('section', { class: 'card' }, body));
    ctx.every(5000, load);
  },
};

async function add(ctx, reload) {
  const vhosts = await vhostOptions(ctx.api);
  return dialog({
    title: 'Add exchange',
    id: 'exchange-form',
    fields: [
      { name: 'vhost', label: 'Virtual host', type: 'select', options: vhosts, value: vhosts[0] },
      { name: 'name', label: 'Name', required: true },
      { name: 'type', label: 'Type', type: 'select', options: ['direct', 'fanout', 'topic', 'headers'], value: 'direct' },
      { name: 'durable', label: 'Durable', type: 'checkbox', value: true },
      { name: 'auto_delete', label: 'Auto-delete', type: 'checkbox' },
      { name: 'internal', label: 'Internal', type: 'checkbox' },
      { name: 'arguments', label: 'Arguments (JSON object)', type: 'textarea', placeholder: '{"alternate-exchange": "ae"}' },
    ],
    submit: 'Add exchange',
    async onSubmit(v) {
      await ctx.api.put(`/exchanges/${ctx.api.seg(v.vhost)}/${ctx.api.seg(v.name)}`, {
        type: v.type, durable: v.durable, auto_delete: v.auto_delete, internal: v.internal,
        arguments: parseJSON(v.arguments, 'Arguments'),
      });
      ctx.toast(`Exchange ${v.name} added`);
      await reload();
    },
  });
}

function remove(ctx, x, reload) {
  return dialog({
    title: 'Delete exchange',
    id: 'confirm-delete',
    intro: `Delete exchange ${x.name} in ${x.vhost} and its bindings?`,
    fields: [{ name: 'if_unused', label: 'Only if unused', type: 'checkbox' }],
    submit: 'Delete', danger: true,
    async onSubmit(v) {
      await ctx.api.del(`/exchanges/${ctx.api.seg(x.vhost)}/${ctx.api.seg(x.name)}${v.if_unused ? '?if-unused=true' : ''}`);
      ctx.toast(`Exchange ${x.name} deleted`);
      await reload();
    },
  });
}

function publishTo(ctx, x) {
  return dialog({
    title: `Publish to ${label(x)}`,
    id: 'publish-form',
    intro: `Virtual host ${x.vhost}`,
    fields: publishFields(''),
    submit: 'Publish',
    async onSubmit(v) {
      const routed = await publish(ctx.api, x.vhost, x.name, v);
      ctx.toast(routed ? 'Message published and routed.' : 'Message published but not routed to any queue.', routed ? 'ok' : 'err');
    },
  });
}
