// Overview: object and message totals, the node, and live charts of message rates and depths.
import { LineChart } from '../chart.js';
import { bytes, clear, h, num, problem, rate, table } from '../ui.js';

const TOTALS = [
  ['connections', 'Connections', (o) => o.object_totals?.connections],
  ['channels', 'Channels', (o) => o.object_totals?.channels],
  ['exchanges', 'Exchanges', (o) => o.object_totals?.exchanges],
  ['queues', 'Queues', (o) => o.object_totals?.queues],
  ['consumers', 'Consumers', (o) => o.object_totals?.consumers],
  ['messages_ready', 'Ready', (o) => o.queue_totals?.messages_ready],
  ['messages_unacknowledged', 'Unacked', (o) => o.queue_totals?.messages_unacknowledged],
  ['messages', 'Total messages', (o) => o.queue_totals?.messages],
];

// RATES are plotted from message_stats: the API's *_details.rate once it reports one, else
// the change of the counter between two polls.
const RATES = [
  { key: 'publish', label: 'Publish' },
  { key: 'deliver_get', label: 'Deliver / get' },
  { key: 'ack', label: 'Acknowledge' },
  { key: 'redeliver', label: 'Redeliver' },
  { key: 'return_unroutable', label: 'Unroutable' },
];
const DEPTHS = [
  { key: 'messages_ready', label: 'Ready' },
  { key: 'messages_unacknowledged', label: 'Unacked' },
];

const legend = (series) => h('div', { class: 'legend' }, series.map((s, i) => h('span', { class: 's' + (i + 1) }, s.label)));

export default {
  title: 'Overview',
  async render(main, ctx) {
    const err = h('div');
    const tiles = h('div', { class: 'tiles', id: 'totals' });
    const rateNow = h('div', { class: 'legend', id: 'rates-now' });
    const rateCanvas = h('canvas', { class: 'chart', id: 'chart-rates' });
    const depthCanvas = h('canvas', { class: 'chart', id: 'chart-depths' });
    const node = h('div', { id: 'node' });
    const clusterCard = h('section', { class: 'card', id: 'cluster', hidden: true });
    main.append(
      h('div', { class: 'pagehead' }, h('h1', {}, 'Overview'), h('span', { class: 'muted', id: 'updated' })),
      err, tiles,
      h('div', { class: 'grid' },
        h('section', { class: 'card' }, h('h2', {}, 'Message rates'), rateCanvas, legend(RATES), rateNow),
        h('section', { class: 'card' }, h('h2', {}, 'Queued messages'), depthCanvas, legend(DEPTHS))),
      h('section', { class: 'card' }, h('h2', {}, 'Node'), node),
      clusterCard);
    const rates = new LineChart(rateCanvas, RATES, { unit: '/s' });
    const depths = new LineChart(depthCanvas, DEPTHS);
    ctx.onStop(() => { rates.dispose(); depths.dispose(); });
    let prev = null;
    const seenRate = {};
    ctx.every(5000, async () => {
      let o;
      try {
        o = await ctx.api.get('/overview');
      } catch (e) {
        clear(err, problem(e, 'Overview'));
        return;
      }
      clear(err);
      const now = Date.now();
      clear(tiles, TOTALS.map(([k, label, f]) => h('div', { class: 'tile', dataset: { total: k } },
        h('div', { class: 'v' }, num(f(o) ?? 0)), h('div', { class: 'k' }, label))));
      const ms = o.message_stats || {};
      const stat = (k) => (k === 'deliver_get' && ms.deliver_get === undefined
        ? (ms.deliver ?? 0) + (ms.deliver_no_ack ?? 0) + (ms.get ?? 0) + (ms.get_no_ack ?? 0)
        : ms[k] ?? 0);
      const point = {};
      for (const s of RATES) {
        const r = ms[s.key + '_details']?.rate;
        if (typeof r === 'number' && r > 0) seenRate[s.key] = true;
        if (seenRate[s.key]) point[s.key] = r ?? 0;
        else if (prev) point[s.key] = Math.max(0, (stat(s.key) - prev.stats[s.key]) / ((now - prev.t) / 1000));
      }
      prev = { t: now, stats: Object.fromEntries(RATES.map((s) => [s.key, stat(s.key)])) };
      if (Object.keys(point).length) rates.push(now, point);
      clear(rateNow, RATES.map((s) => h('span', {}, `${s.label}: ${rate(point[s.key] ?? 0)}`)));
      depths.push(now, o.queue_totals || {});
      clear(node, nodeInfo(o));
      await showCluster(ctx, clusterCard);
      const updated = document.getElementById('updated');
      updated.textContent = 'Updated ' + new Date(now).toLocaleTimeString() + ' · every 5 s';
      updated.dataset.polls = String(Number(updated.dataset.polls || 0) + 1);
    });
    return null;
  },
};

// showCluster fills the cluster card from Warren's /api/warren/cluster: the members and the
// leader of the metadata group as this node sees them, with each member's state and memory
// from /api/nodes (a member that is down is listed there as not running). A broker without
// one (RabbitMQ, or a Warren running alone) leaves the card hidden.
async function showCluster(ctx, card) {
  let c;
  try { c = await ctx.api.get('/warren/cluster'); } catch { c = null; }
  card.hidden = !c?.clustered;
  if (!c?.clustered) return;
  let nodes;
  try { nodes = await ctx.api.get('/nodes'); } catch { nodes = []; }
  const byName = new Map((nodes || []).map((n) => [n.name, n]));
  const members = c.members || [];
  clear(card, h('h2', {}, 'Cluster'),
    h('dl', { class: 'kv' },
      h('dt', {}, 'Leader'), h('dd', { id: 'cluster-leader' }, c.leader || 'none (election under way)'),
      h('dt', {}, 'This node'), h('dd', {}, `${c.node} (${String(c.state || '').toLowerCase()})`),
      h('dt', {}, 'Term'), h('dd', {}, num(c.term))),
    table([
      { label: 'Member', value: (m) => (m.name === c.leader ? '\u2605 ' : '') + m.name },
      { label: 'Address', value: (m) => h('span', { class: 'mono' }, m.address) },
      { label: 'Role', value: (m) => (m.name === c.leader ? 'leader' : m.voter ? 'follower' : 'non-voter') },
      { label: 'State', value: (m) => nodeState(byName.get(m.name)) },
      { label: 'Memory', value: (m) => memory(byName.get(m.name)) },
      { label: 'Up for', value: (m) => uptime(byName.get(m.name)) },
    ], members, { key: (m) => m.name, empty: 'No members known yet.' }));
}

// nodeState is a member as /api/nodes lists it: running, or not (down, or not answering).
function nodeState(n) {
  if (!n) return '';
  return n.running ? h('span', { class: 'state-running' }, 'running') : h('span', { class: 'state-down' }, 'not running');
}

function memory(n) {
  if (!n?.running || n.mem_used === undefined) return '';
  const alarm = n.mem_alarm ? ' \u26a0 alarm' : '';
  return n.mem_limit ? `${bytes(n.mem_used)} of ${bytes(n.mem_limit)}${alarm}` : bytes(n.mem_used) + alarm;
}

function uptime(n) {
  if (!n?.running || !n.uptime) return '';
  const s = Math.floor(n.uptime / 1000);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

function nodeInfo(o) {
  const kv = [
    ['Node', o.node], ['Cluster', o.cluster_name], ['Product', `${o.product_name ?? ''} ${o.product_version ?? ''}`],
    ['RabbitMQ compatibility', o.rabbitmq_version], ['Management', o.management_version], ['Rates mode', o.rates_mode],
  ].filter(([, v]) => v !== undefined && v !== null && String(v).trim() !== '');
  const listeners = o.listeners || [];
  return [
    h('dl', { class: 'kv' }, kv.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
    listeners.length ? [h('h3', { class: 'spaced' }, 'Listeners'), table([
      { label: 'Protocol', value: (l) => l.protocol },
      { label: 'Address', value: (l) => l.ip_address },
      { label: 'Port', value: (l) => l.port, num: true },
    ], listeners)] : null,
  ];
}
