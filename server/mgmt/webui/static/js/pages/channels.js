// Channels: every channel of every connection.
import { clear, detailRate, h, num, problem, rate, stateText, table } from '../ui.js';

export default {
  title: 'Channels',
  async render(main, ctx) {
    const body = h('div', { id: 'channels' });
    main.append(h('div', { class: 'pagehead' }, h('h1', {}, 'Channels')), h('section', { class: 'card' }, body));
    ctx.every(5000, async () => {
      let list;
      try { list = await ctx.api.get('/channels'); } catch (e) { clear(body, problem(e, 'Channels')); return; }
      if (!Array.isArray(list)) list = list.items || [];
      clear(body, table([
        { label: 'Channel', value: (c) => h('span', { class: 'mono' }, c.name) },
        { label: 'User', value: (c) => c.user },
        { label: 'Vhost', value: (c) => c.vhost },
        { label: 'Mode', value: (c) => [c.confirm ? 'confirm' : '', c.transactional ? 'tx' : ''].filter(Boolean).join(', ') },
        { label: 'State', value: (c) => stateText(c.state) },
        { label: 'Prefetch', value: (c) => num(c.prefetch_count), num: true },
        { label: 'Consumers', value: (c) => num(c.consumer_count), num: true },
        { label: 'Unacked', value: (c) => num(c.messages_unacknowledged), num: true },
        { label: 'Unconfirmed', value: (c) => num(c.messages_unconfirmed), num: true },
        { label: 'Publish', value: (c) => rate(detailRate(c.message_stats, 'publish')), num: true },
        { label: 'Deliver / get', value: (c) => rate(detailRate(c.message_stats, 'deliver_get')), num: true },
      ], list, { empty: 'No channels.', key: (c) => c.name }));
    });
  },
};
