// Connections: every client connection; close one with a reason (RabbitMQ's X-Reason).
import { bytes, clear, dialog, h, num, problem, stateText, table, when } from '../ui.js';

export default {
  title: 'Connections',
  async render(main, ctx) {
    const body = h('div', { id: 'connections' });
    main.append(h('div', { class: 'pagehead' }, h('h1', {}, 'Connections')), h('section', { class: 'card' }, body));
    const load = async () => {
      let list;
      try { list = await ctx.api.get('/connections'); } catch (e) { clear(body, problem(e, 'Connections')); return; }
      if (!Array.isArray(list)) list = list.items || [];
      clear(body, table([
        { label: 'Name', value: (c) => [c.user_provided_name ? h('div', {}, c.user_provided_name) : null, h('div', { class: c.user_provided_name ? 'muted mono' : 'mono' }, c.name)] },
        { label: 'User', value: (c) => c.user },
        { label: 'Vhost', value: (c) => c.vhost },
        { label: 'State', value: (c) => stateText(c.state) },
        { label: 'Client', value: (c) => [c.client_properties?.product, c.client_properties?.version].filter(Boolean).join(' ') },
        { label: 'Protocol', value: (c) => c.protocol + (c.ssl ? ' TLS' : '') },
        { label: 'Channels', value: (c) => num(c.channels), num: true },
        { label: 'From client', value: (c) => bytes(c.recv_oct), num: true },
        { label: 'To client', value: (c) => bytes(c.send_oct), num: true },
        { label: 'Connected', value: (c) => when(c.connected_at) },
        { label: '', value: (c) => h('button', { class: 'small danger close-connection', onclick: () => closeConnection(ctx, c, load) }, 'Close') },
      ], list, { empty: 'No connections.', key: (c) => c.name }));
    };
    ctx.every(5000, load);
  },
};

function closeConnection(ctx, c, reload) {
  return dialog({
    title: 'Close connection',
    id: 'close-connection',
    intro: `${c.user_provided_name || c.name} (user ${c.user}) is closed with 320 CONNECTION_FORCED and this reason.`,
    fields: [{ name: 'reason', label: 'Reason', value: 'Closed via management plugin' }],
    submit: 'Close connection',
    danger: true,
    async onSubmit(v) {
      await ctx.api.del('/connections/' + ctx.api.seg(c.name), v.reason ? { 'X-Reason': v.reason } : {});
      ctx.toast(`Closing ${c.user_provided_name || c.name}`);
      await reload();
    },
  });
}
