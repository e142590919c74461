// Users and permissions: list, add and delete users; set and clear permissions.
import { badge, clear, dialog, h, problem, table, vhostOptions } from '../ui.js';

export default {
  title: 'Users',
  async render(main, ctx) {
    const users = h('div', { id: 'users' });
    const perms = h('div', { id: 'permissions' });
    let known = [];
    const load = async () => {
      try {
        let list = await ctx.api.get('/users');
        if (!Array.isArray(list)) list = list.items || [];
        known = list.map((u) => u.name);
        clear(users, table([
          { label: 'Name', value: (u) => u.name },
          { label: 'Tags', value: (u) => (Array.isArray(u.tags) ? u.tags : String(u.tags || '').split(',')).filter(Boolean).map((t) => badge(t)) },
          { label: 'Password', value: (u) => (u.password_hash ? 'set' : h('span', { class: 'muted' }, 'none')) },
          { label: '', value: (u) => h('button', { class: 'small danger delete-user', onclick: () => removeUser(ctx, u.name, load) }, 'Delete') },
        ], list, { empty: 'No users.', key: (u) => u.name }));
      } catch (e) { clear(users, problem(e, 'Users')); }
      try {
        const list = await ctx.api.get('/permissions');
        clear(perms, table([
          { label: 'User', value: (p) => p.user },
          { label: 'Vhost', value: (p) => p.vhost },
          { label: 'Configure', value: (p) => h('code', {}, p.configure) },
          { label: 'Write', value: (p) => h('code', {}, p.write) },
          { label: 'Read', value: (p) => h('code', {}, p.read) },
          { label: '', value: (p) => h('button', { class: 'small danger delete-permission', onclick: () => removePermission(ctx, p, load) }, 'Clear') },
        ], list, { empty: 'No permissions.', key: (p) => `${p.vhost}|${p.user}` }));
      } catch (e) { clear(perms, problem(e, 'Permissions')); }
    };
    main.append(
      h('div', { class: 'pagehead' }, h('h1', {}, 'Users'),
        h('div', { class: 'actions' }, h('button', { class: 'primary', id: 'add-user', onclick: () => addUser(ctx, load) }, 'Add user'))),
      h('section', { class: 'card' }, users),
      h('div', { class: 'pagehead' }, h('h1', {}, 'Permissions'),
        h('div', { class: 'actions' }, h('button', { class: 'primary', id: 'set-permission', onclick: () => setPermission(ctx, known, load) }, 'Set permission'))),
      h('section', { class: 'card' }, perms));
    ctx.every(5000, load);
  },
};

function addUser(ctx, reload) {
  return dialog({
    title: 'Add user', id: 'user-form',
    fields: [
      { name: 'name', label: 'Username', required: true },
      { name: 'password', label: 'Password', type: 'password' },
      { name: 'tags', label: 'Tags (comma-separated)', placeholder: 'administrator, monitoring, policymaker, management' },
    ],
    submit: 'Add user',
    async onSubmit(v) {
      const tags = v.tags.split(',').map((t) => t.trim()).filter(Boolean).join(',');
      const body = { tags };
      if (v.password) body.password = v.password;
      await ctx.api.put(`/users/${ctx.api.seg(v.name)}`, body);
      ctx.toast(`User ${v.name} saved`);
      await reload();
    },
  });
}

function removeUser(ctx, name, reload) {
  return dialog({
    title: 'Delete user', id: 'confirm-delete', intro: `Delete user ${name} and their permissions?`, submit: 'Delete', danger: true,
    async onSubmit() {
      await ctx.api.del(`/users/${ctx.api.seg(name)}`);
      ctx.toast(`User ${name} deleted`);
      await reload();
    },
  });
}

async function setPermission(ctx, users, reload) {
  const vhosts = await vhostOptions(ctx.api);
  return dialog({
    title: 'Set permission', id: 'permission-form',
    fields: [
      users.length ? { name: 'user', label: 'User', type: 'select', options: users, value: users[0] } : { name: 'user', label: 'User', required: true },
      { name: 'vhost', label: 'Virtual host', type: 'select', options: vhosts, value: vhosts[0] },
      { name: 'configure', label: 'Configure regexp', value: '.*' },
      { name: 'write', label: 'Write regexp', value: '.*' },
      { name: 'read', label: 'Read regexp', value: '.*' },
    ],
    submit: 'Set permission',
    async onSubmit(v) {
      await ctx.api.put(`/permissions/${ctx.api.seg(v.vhost)}/${ctx.api.seg(v.user)}`, { configure: v.configure, write: v.write, read: v.read });
      ctx.toast(`Permissions of ${v.user} in ${v.vhost} set`);
      await reload();
    },
  });
}

function removePermission(ctx, p, reload) {
  return dialog({
    title: 'Clear permission', id: 'confirm-delete', intro: `Remove ${p.user}'s permissions in ${p.vhost}?`, submit: 'Clear', danger: true,
    async onSubmit() {
      await ctx.api.del(`/permissions/${ctx.api.seg(p.vhost)}/${ctx.api.seg(p.user)}`);
      ctx.toast(`Permissions of ${p.user} in ${p.vhost} cleared`);
      await reload();
    },
  });
}
