// A floor for `npm run bench`'s pull row: the least a Node client can do to pull the corpus.
// It resolves each reference (manifest, and an index's children), then fetches every blob
// once, largest first, 4 at a time, over keep-alive connections: http.get → sha256 → writev to a temp file →
// fsync → rename, and checks each digest. No store layout, no lock, no resume, no progress, no
// schema checks, no index.json: only the work no correct client can skip. Plain JavaScript,
// run with `node` directly, so its time includes Node's start-up and nothing else.
// With --manifests (the scale section: thousands of small images, where a store's manifest
// files are a third of its writes) each manifest is written too, as its digest, the same way.
//
//   node scripts/bench-floor.mjs [--manifests] HOST OUTDIR REPO:TAG...
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

const args = process.argv.slice(2);
const storeManifests = args[0] === '--manifests';
if (storeManifests) args.shift();
const [host, outDir, ...refs] = args;
if (!host || !outDir || refs.length === 0) throw new Error('usage: bench-floor.mjs HOST OUTDIR REPO:TAG...');
const [hostname, port] = host.split(':');
const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });
const ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

function get(urlPath, headers = {}) {
  return new Promise((resolve, reject) => {
    http
      .get({ hostname, port, path: urlPath, agent, headers }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          reject(new Error(`GET ${urlPath}: ${res.statusCode}`));
        } else resolve(res);
      })
      .on('error', reject);
  });
}

/** `data` durably under `target`: temp file, write, fsync, close, rename. */
function writeDurable(target, data) {
  const tmp = `${target}.tmp`;
  return new Promise((resolve, reject) => {
    fs.open(tmp, 'w', (err, fd) => {
      if (err) return reject(err);
      fs.write(fd, data, (e0) =>
        fs.fsync(fd, (e1) =>
          fs.close(fd, (e2) => {
            if (e0 || e1 || e2) return reject(e0 ?? e1 ?? e2);
            fs.rename(tmp, target, (e3) => (e3 ? reject(e3) : resolve()));
          }),
        ),
      );
    });
  });
}

async function manifest(repo, ref) {
  const res = await get(`/v2/${repo}/manifests/${ref}`, { accept: ACCEPT });
  const chunks = [];
  for await (const c of res) chunks.push(c);
  const bytes = Buffer.concat(chunks);
  if (storeManifests) await writeDurable(path.join(outDir, createHash('sha256').update(bytes).digest('hex')), bytes);
  return JSON.parse(bytes.toString('utf8'));
}

const blobs = new Map(); // digest -> { repo, size }
async function resolve(repo, ref) {
  const m = await manifest(repo, ref);
  if (Array.isArray(m.manifests)) {
    await Promise.all(m.manifests.map((d) => resolve(repo, d.digest)));
    return;
  }
  for (const d of [m.config, ...(m.layers ?? [])]) if (d && !blobs.has(d.digest)) blobs.set(d.digest, { repo, size: d.size });
}

function download(digest, repo) {
  const target = path.join(outDir, digest.slice('sha256:'.length));
  const tmp = `${target}.tmp`;
  return new Promise((resolve, reject) => {
    fs.open(tmp, 'w', async (err, fd) => {
      if (err) return reject(err);
      const hash = createHash('sha256');
      const pending = [];
      let writing = false;
      let ended = false;
      const finish = () =>
        fs.fsync(fd, (e1) =>
          fs.close(fd, (e2) => {
            if (e1 || e2) return reject(e1 ?? e2);
            const got = `sha256:${hash.digest('hex')}`;
            if (got !== digest) return reject(new Error(`${digest}: got ${got}`));
            fs.rename(tmp, target, (e3) => (e3 ? reject(e3) : resolve()));
          }),
        );
      const pump = () => {
        if (writing) return;
        if (pending.length === 0) {
          if (ended) finish();
          return;
        }
        const bufs = pending.splice(0);
        writing = true;
        fs.writev(fd, bufs, (e) => {
          if (e) return reject(e);
          writing = false;
          pump();
        });
      };
      try {
        const res = await get(`/v2/${repo}/blobs/${digest}`);
        res.on('data', (c) => {
          hash.update(c);
          pending.push(c);
          pump();
        });
        res.on('end', () => {
          ended = true;
          pump();
        });
        res.on('error', reject);
      } catch (e) {
        reject(e);
      }
    });
  });
}

fs.mkdirSync(outDir, { recursive: true });
await Promise.all(
  refs.map((r) => {
    const at = r.lastIndexOf(':');
    return resolve(r.slice(0, at), r.slice(at + 1));
  }),
);
// Largest first, so the longest transfer starts at once.
const queue = [...blobs.entries()].sort((a, b) => b[1].size - a[1].size);
await Promise.all(
  Array.from({ length: 4 }, async () => {
    for (let next = queue.shift(); next; next = queue.shift()) await download(next[0], next[1].repo);
  }),
);
agent.destroy();
console.log(`${blobs.size} blobs`);
