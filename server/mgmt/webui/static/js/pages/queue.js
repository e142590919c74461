// One queue: its depth and details, and what an operator does to it: get messages (requeued
// by default, so looking loses nothing), publish, move dead letters back, purge, delete.
import { bytes, clear, dialog, features, h, memberState, num, problem, replicas, stateText, table, values, field, actionError } from '../ui.js';
import { publish, publishFields } from './publish.js';

export default {
  title: 'Queue',
  async render(main, ctx) {
    const [vhost, name] = ctx.args;
    const path = `/queues/${ctx.api.seg(vhost)}/${ctx.api.seg(name)}`;
    const err = h('div');
    const tiles = h('div', { class: 'tiles', id: 'queue-totals' });
    const info = h('div', { id: 'queue-info' });
    const bindings = h('div', { id: 'queue-bindings' });
    const consumers = h('div', { id: 'queue-consumers' });
    const replication = h('section', { class: 'card', id: 'queue-replication', hidden: true });
    main.append(
      h('div', { class: 'pagehead' },
        h('h1', {}, h('span', { class: 'muted' }, 'Queue '), h('span', { id: 'queue-name' }, name),
          h('span', { class: 'muted' }, ` in ${vhost}`)),
        h('div', { class: 'actions' },
          h('button', { id: 'purge', class: 'danger', onclick: () => purge(ctx, path, name, load) }, 'Purge'),
          h('button', { id: 'delete-queue', class: 'danger', onclick: () => remove(ctx, path, name) }, 'Delete'))),
      err, tiles,
      h('div', { class: 'grid' },
        h('section', { class: 'card' }, h('h2', {}, 'Details'), info),
        h('section', { class: 'card' }, h('h2', {}, 'Consumers'), consumers)),
      replication,
      h('div', { class: 'grid' },
        getPanel(ctx, path),
        publishPanel(ctx, vhost, name, () => load())),
      h('div', { class: 'grid' },
        redrivePanel(ctx, path, () => load()),
        h('section', { class: 'card' }, h('h2', {}, 'Bindings'), bindings)));

    async function load() {
      let q;
      try { q = await ctx.api.get(path); } catch (e) {
        clear(err, e.status === 404 ? h('div', { class: 'notice err', role: 'alert', id: 'queue-missing' }, `Queue ${name} in ${vhost} does not exist (any more).`) : problem(e, 'Queue'));
        return;
      }
      clear(err);
      clear(tiles, [
        ['messages_ready', 'Ready'], ['messages_unacknowledged', 'Unacked'], ['messages', 'Total'], ['consumers', 'Consumers'],
      ].map(([k, l]) => h('div', { class: 'tile', dataset: { total: k } }, h('div', { class: 'v' }, num(q[k] ?? 0)), h('div', { class: 'k' }, l))));
      const kv = [
        ['Type', q.type || 'classic'], ['State', stateText(q.state)], ['Features', features(q)],
        ['Policy', q.policy || q.effective_policy_definition?.name], ['Exclusive owner', q.owner_pid_details?.name],
        ['Memory', bytes(q.memory)], ['Message bytes', bytes(q.message_bytes)],
        q.members?.length ? ['Leader', q.leader] : ['Node', q.node],
        ['Members', q.members?.length ? replicas(q) : null],
        ['Arguments', Object.keys(q.arguments || {}).length ? h('pre', {}, JSON.stringify(q.arguments, null, 2)) : null],
      ].filter(([, v]) => v !== undefined && v !== null && v !== '' && !(Array.isArray(v) && !v.length));
      clear(info, h('dl', { class: 'kv' }, kv.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])));
      showReplication(replication, q);
      const cs = q.consumer_details || [];
      clear(consumers, table([
        { label: 'Tag', value: (c) => h('span', { class: 'mono' }, c.consumer_tag) },
        { label: 'Channel', value: (c) => c.channel_details?.name },
        { label: 'Ack', value: (c) => (c.ack_required ? 'manual' : 'auto') },
        { label: 'Prefetch', value: (c) => num(c.prefetch_count), num: true },
        { label: 'Status', value: (c) => c.activity_status || (c.active ? 'up' : '') },
      ], cs, { empty: q.consumers ? `${q.consumers} consumer(s).` : 'No consumers.' }));
      try {
        const bs = await ctx.api.get(path + '/bindings');
        clear(bindings, table([
          { label: 'From', value: (b) => (b.source === '' ? '(AMQP default)' : b.source) },
          { label: 'Routing key', value: (b) => b.routing_key },
          { label: 'Arguments', value: (b) => (Object.keys(b.arguments || {}).length ? JSON.stringify(b.arguments) : '') },
        ], bs, { empty: 'No bindings.' }));
      } catch (e) {
        clear(bindings, problem(e, 'Bindings'));
      }
    }
    ctx.every(5000, load);
  },
};

// showReplication fills the card of a quorum queue's members, as the answering node's Raft
// group sees them (the leader knows every member's log; a follower only its own and the
// leader's); hidden for other queues.
function showReplication(card, q) {
  const members = q.members || [];
  card.hidden = !members.length;
  if (!members.length) return;
  const raft = q.raft || {};
  const byName = Object.fromEntries((raft.members || []).map((m) => [m.name, m]));
  const leads = raft.state === 'Leader';
  clear(card, h('h2', {}, 'Replication'),
    raft.state ? h('p', { class: 'muted', id: 'raft-state' },
      `This node is ${raft.state.toLowerCase()} · term ${num(raft.term)} · last index ${num(raft.last_index)} · committed ${num(raft.commit_index)} · applied ${num(raft.applied_index)}`) : null,
    table([
      { label: 'Member', value: (m) => m },
      { label: 'Role', value: (m) => memberRole(q, m, byName[m]) },
      { label: 'State', value: (m) => { const st = memberState(q, m); return h('span', { class: 'member ' + st }, st); } },
      { label: 'Behind leader', value: (m) => (leads && m !== q.leader && byName[m]?.known ? num(byName[m].lag) : ''), num: true },
    ], members, { key: (m) => m }));
}

// memberRole is a member's part in the group: the leader, a follower, a learner (a member
// added lately, catching up before it votes), or joining (named by the queue's record, not
// yet in this node's view of the group).
function memberRole(q, m, rm) {
  if (m === q.leader) return 'leader';
  if (rm && rm.voter === false) return 'learner (catching up)';
  if (q.raft && !rm) return 'joining';
  return 'follower';
}

function getPanel(ctx, path) {
  const out = h('div', { id: 'get-results' });
  const form = h('form', { class: 'inline', id: 'get-form' },
    field({ name: 'ackmode', label: 'Ack mode', type: 'select', value: 'ack_requeue_true', options: [
      ['ack_requeue_true', 'Requeue (keep)'],
      ['reject_requeue_true', 'Reject, requeue (keep)'],
      ['ack_requeue_false', 'Ack (remove)'],
      ['reject_requeue_false', 'Reject (remove or dead-letter)'],
    ] }),
    field({ name: 'encoding', label: 'Encoding', type: 'select', value: 'auto', options: [['auto', 'auto: string if UTF-8'], ['base64', 'base64']] }),
    field({ name: 'count', label: 'Messages', type: 'number', value: '1', min: '1' }),
    field({ name: 'truncate', label: 'Truncate at (bytes)', type: 'number', value: '50000', min: '1' }),
    h('label', {}, h('button', { type: 'submit', class: 'primary', id: 'get-messages' }, 'Get messages')));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = values(form);
    clear(out, h('p', { class: 'muted' }, 'Getting…'));
    try {
      const msgs = await ctx.api.post(path + '/get', {
        count: Number(v.count) || 1, ackmode: v.ackmode, encoding: v.encoding, truncate: Number(v.truncate) || 50000,
      });
      clear(out, msgs.length ? msgs.map(message) : h('p', { class: 'muted', id: 'queue-empty' }, 'Queue is empty.'));
    } catch (e) {
      clear(out, h('div', { class: 'notice err action-error', role: 'alert' }, actionError(e)));
    }
  });
  return h('section', { class: 'card' }, h('h2', {}, 'Get messages'),
    h('p', { class: 'muted' }, 'Getting a message with a requeue mode puts it back, marked redelivered: nothing is lost.'),
    form, out);
}

function message(m, i) {
  const props = { ...(m.properties || {}) };
  return h('div', { class: 'message' },
    h('h3', {}, `Message ${i + 1}`),
    h('dl', { class: 'kv' },
      h('dt', {}, 'Exchange'), h('dd', {}, m.exchange === '' ? '(AMQP default)' : m.exchange),
      h('dt', {}, 'Routing key'), h('dd', {}, m.routing_key),
      h('dt', {}, 'Redelivered'), h('dd', {}, String(m.redelivered)),
      h('dt', {}, 'Remaining'), h('dd', {}, num(m.message_count)),
      h('dt', {}, 'Properties'), h('dd', {}, Object.keys(props).length ? h('pre', {}, JSON.stringify(props, null, 2)) : '—'),
      h('dt', {}, 'Payload'), h('dd', {}, h('div', { class: 'muted' }, `${num(m.payload_bytes)} bytes, encoding ${m.payload_encoding}`),
        h('pre', { class: 'payload' }, m.payload))));
}

function publishPanel(ctx, vhost, name, reload) {
  const out = h('div');
  const fields = publishFields(name).filter((f) => f.name !== 'routing_key');
  const form = h('form', { id: 'publish-form' }, fields.map(field),
    h('button', { type: 'submit', class: 'primary', id: 'publish-message' }, 'Publish message'));
  form.addEventListener('submit', async (ev) => {
    ev.preventDefault();
    const v = { ...values(form), routing_key: name };
    try {
      const routed = await publish(ctx.api, vhost, '', v);
      clear(out, h('p', { class: routed ? 'state-ok publish-result' : 'error publish-result' }, routed ? 'Message published.' : 'Message published but not routed.'));
      await reload();
    } catch (e) {
      clear(out, h('div', { class: 'notice err action-error', role: 'alert' }, actionError(e)));
    }
  });
  return h('section', { class: 'card' }, h('h2', {}, 'Publish message'),
    h('p', { class: 'muted' }, 'Published through the default exchange with this queue\'s name as the routing key.'), form, out);
}

function redrivePanel(ctx, path, reload) {
  const out = h('div', { id: 'redrive-result' });
  const btn = h('button', { id: 'redrive', onclick: async () => {
    btn.disabled = true;
    try {
      const r = await ctx.api.post(path + '/redrive', {});
      const moved = r?.moved ?? r?.messages_moved;
      clear(out, h('p', { class: 'state-ok' }, `Moved ${num(moved ?? 0)} message(s) back` + (r?.left !== undefined ? `; ${num(r.left)} left here.` : '.')));
      await reload();
    } catch (e) {
      clear(out, h('div', { class: 'notice err action-error', role: 'alert' }, actionError(e)));
    } finally {
      btn.disabled = false;
    }
  } }, 'Move messages back');
  return h('section', { class: 'card' }, h('h2', {}, 'Dead letters'),
    h('p', { class: 'muted' }, 'For a dead-letter queue: moves each message back to the queue named in its first x-death entry. Messages that were never dead-lettered stay here.'),
    btn, out);
}

function purge(ctx, path, name, reload) {
  return dialog({
    title: 'Purge queue', id: 'confirm-purge', intro: `Remove every ready message from ${name}? This cannot be undone.`,
    submit: 'Purge', danger: true,
    async onSubmit() {
      await ctx.api.del(path + '/contents');
      ctx.toast(`Queue ${name} purged`);
      await reload();
    },
  });
}

function remove(ctx, path, name) {
  return dialog({
    title: 'Delete queue', id: 'confirm-delete', intro: `Delete ${name} and every message in it?`,
    fields: [
      { name: 'if_empty', label: 'Only if empty', type: 'checkbox' },
      { name: 'if_unused', label: 'Only if it has no consumers', type: 'checkbox' },
    ],
    submit: 'Delete', danger: true,
    async onSubmit(v) {
      const q = [v.if_empty ? 'if-empty=true' : '', v.if_unused ? 'if-unused=true' : ''].filter(Boolean).join('&');
      await ctx.api.del(path + (q ? '?' + q : ''));
      ctx.toast(`Queue ${name} deleted`);
      ctx.navigate('#/queues');
    },
  });
}
