// Real protocol clients for preheat's end-to-end tests.
//
//   node client.js --kind KIND --url URL --sessions N [--writes 0|1]
//                  [--concurrency C] [--ticks 3] [--session-timeout-ms 15000]
//
// Runs N client sessions of KIND (see server.js) against URL, at most C at a
// time (default min(N, 4)), each on its own connection made by the
// protocol's own client library:
//
//   graphql-transport-ws  graphql-ws createClient (webSocketImpl ws)
//   graphql-ws            subscriptions-transport-ws SubscriptionClient
//   socket.io             socket.io-client, websocket transport only
//   json-rpc              rpc-websockets Client
//
// A session connects and waits for the handshake, runs 2 to 5 reads, one
// subscription that receives --ticks values and completes, and with
// --writes 1 one or two writes (the socket.io binary upload among them in
// some sessions), interleaved so that some sessions write before they
// read; then it closes cleanly. Session i always runs the same plan.
//
// For socket.io, URL is the server's origin, ws://HOST:PORT, optionally
// followed by the Engine.IO path (default /socket.io/); the namespace is
// always "/".
//
// Prints one JSON line and exits 0 only if every session succeeded:
//
//   {"sessions":N,"ok":N,"failed":N,"reads":N,"writes":N,"subscriptions":N,"errors":["…"]}
//
// reads, writes and subscriptions count operations that completed; a
// JSON-RPC notification write counts once sent, and is always followed by a
// call on the same connection, which the server answers after it.
'use strict'

const { parseArgs } = require('util')

const KINDS = ['graphql-transport-ws', 'graphql-ws', 'socket.io', 'json-rpc']
// MAX_ERRORS bounds the error strings in the summary.
const MAX_ERRORS = 5
// OP_TIMEOUT_MS bounds each acknowledged operation.
const OP_TIMEOUT_MS = 5000

function usage (msg) {
  if (msg) console.error('client.js: ' + msg)
  console.error('usage: node client.js --kind ' + KINDS.join('|') + ' --url URL --sessions N [--writes 0|1] [--concurrency C] [--ticks 3] [--session-timeout-ms 15000]')
  process.exit(2)
}

let args
try {
  args = parseArgs({
    options: {
      kind: { type: 'string' },
      url: { type: 'string' },
      sessions: { type: 'string', default: '1' },
      writes: { type: 'string', default: '0' },
      concurrency: { type: 'string' },
      ticks: { type: 'string', default: '3' },
      'session-timeout-ms': { type: 'string', default: '15000' }
    }
  }).values
} catch (err) {
  usage(err.message)
}
const kind = args.kind
const url = args.url
const sessions = Number(args.sessions)
const writes = args.writes === '1'
const concurrency = args.concurrency === undefined ? Math.min(sessions, 4) : Number(args.concurrency)
const ticks = Number(args.ticks)
const sessionTimeoutMs = Number(args['session-timeout-ms'])
if (!KINDS.includes(kind)) usage('unknown kind ' + JSON.stringify(kind))
if (!url) usage('--url is required')
if (!Number.isInteger(sessions) || sessions < 1) usage('bad sessions ' + JSON.stringify(args.sessions))
if (args.writes !== '0' && args.writes !== '1') usage('--writes takes 0 or 1')
if (!Number.isInteger(concurrency) || concurrency < 1) usage('bad concurrency ' + JSON.stringify(args.concurrency))
if (!Number.isInteger(ticks) || ticks < 1) usage('bad ticks ' + JSON.stringify(args.ticks))
if (!Number.isInteger(sessionTimeoutMs) || sessionTimeoutMs < 1) usage('bad session-timeout-ms')

// ---- session plans ----

const READS = {
  'graphql-transport-ws': ['tasks', 'task', 'me'],
  'graphql-ws': ['tasks', 'task', 'me'],
  'socket.io': ['tasks:list', 'getTask'],
  'json-rpc': ['tasks.list', 'getTask']
}
const WRITES = {
  'graphql-transport-ws': ['createTask', 'updateTask', 'deleteTask'],
  'graphql-ws': ['createTask', 'updateTask', 'deleteTask'],
  'socket.io': ['createTask', 'tasks:update', 'upload', 'deleteTask'],
  'json-rpc': ['createTask', 'updateTask', 'tasks.touch', 'tasks.delete']
}
// NOTIFY names the writes sent without an answer.
const NOTIFY = new Set(['tasks.touch'])

// plan returns session i's operations: 2 to 5 reads, with writes 1 or 2
// writes, alternating (odd sessions start with a write), and the
// subscription in the middle.
function plan (i) {
  const R = READS[kind]
  const W = WRITES[kind]
  const nr = 2 + (i % 4)
  const nw = writes ? 1 + (i % 2) : 0
  const reads = Array.from({ length: nr }, (_, k) => R[(i + k) % R.length])
  const ws = Array.from({ length: nw }, (_, k) => W[(i + k) % W.length])
  const ops = []
  let r = 0
  let w = 0
  let wantWrite = i % 2 === 1
  while (r < nr || w < nw) {
    if ((wantWrite && w < nw) || r >= nr) ops.push({ op: ws[w++], write: true })
    else ops.push({ op: reads[r++], write: false })
    wantWrite = !wantWrite
  }
  // A notification is never last, so that an answered call follows it.
  if (ops.length && NOTIFY.has(ops[ops.length - 1].op)) ops.unshift(ops.pop())
  ops.splice(Math.floor(ops.length / 2), 0, { op: 'subscribe', write: false, subscribe: true })
  return ops
}

// ---- helpers ----

function withTimeout (promise, ms, what) {
  let timer
  return Promise.race([
    promise,
    new Promise((resolve, reject) => {
      timer = setTimeout(() => reject(new Error(what + ': no answer in ' + ms + ' ms')), ms)
    })
  ]).finally(() => clearTimeout(timer))
}

// session runs body, then end, which closes the connection and waits for
// it to close; an error of body wins over one of end.
async function session (body, end) {
  let err
  try {
    await body()
  } catch (e) {
    err = e
  }
  try {
    await end()
  } catch (e) {
    err = err || e
  }
  if (err) throw err
}

function errString (err) {
  if (err instanceof Error) return err.message
  if (err && typeof err === 'object') {
    // ws ErrorEvent and CloseEvent, as graphql-ws and rpc-websockets pass
    // them on; their fields are getters JSON leaves out.
    if (err.error instanceof Error) return err.error.message
    if ('code' in err && 'reason' in err) return 'closed ' + err.code + ' ' + err.reason
    if (typeof err.message === 'string' && err.message) return err.message
    try { return JSON.stringify(err) } catch (_) {}
  }
  return String(err)
}

// ---- GraphQL documents, shared by both GraphQL kinds ----

function graphqlOp (op, i, state) {
  switch (op) {
    case 'tasks': return { query: 'query Tasks { tasks { id title done } }', operationName: 'Tasks' }
    case 'task': return { query: 'query Task($id: ID!) { task(id: $id) { id title done } }', variables: { id: '1' } }
    case 'me': return { query: '{ me { id name } }' }
    case 'createTask': return { query: 'mutation CreateTask($title: String!) { createTask(title: $title) { id title done } }', variables: { title: 'task of session ' + i }, operationName: 'CreateTask' }
    case 'updateTask': return { query: 'mutation UpdateTask($id: ID!, $done: Boolean) { updateTask(id: $id, done: $done) { id done } }', variables: { id: '1', done: i % 2 === 0 } }
    case 'deleteTask': return { query: 'mutation DeleteTask($id: ID!) { deleteTask(id: $id) }', variables: { id: state.created || String(1000 + i) } }
    case 'subscribe': return { query: 'subscription Ticks($n: Int!) { taskTicks(n: $n) }', variables: { n: ticks }, operationName: 'Ticks' }
  }
  throw new Error('no GraphQL document for ' + op)
}

function checkGraphQL (op, results, state) {
  for (const r of results) {
    if (r.errors && r.errors.length) throw new Error(op + ': ' + errString(r.errors[0]))
  }
  if (op === 'subscribe') {
    const got = results.map((r) => r.data && r.data.taskTicks)
    if (got.length !== ticks || got.some((v, k) => v !== k)) throw new Error('subscribe: got ticks ' + JSON.stringify(got))
    return
  }
  if (results.length !== 1 || !results[0].data) throw new Error(op + ': want one result, got ' + JSON.stringify(results))
  if (op === 'createTask') state.created = results[0].data.createTask.id
}

// graphql-transport-ws: graphql-ws createClient over ws.
async function graphqlTransportWSSession (i, ops, tally) {
  const WebSocket = require('ws')
  const { createClient } = require('graphql-ws')
  let ack, fail, closed
  const acked = new Promise((resolve) => { ack = resolve })
  // failed rejects when the connection fails or the server closes it with
  // an error code; raced with acked below, so its rejection is handled.
  const failed = new Promise((resolve, reject) => { fail = reject })
  const closedP = new Promise((resolve) => { closed = resolve })
  const client = createClient({
    url,
    webSocketImpl: WebSocket,
    lazy: false,
    retryAttempts: 0,
    connectionParams: { client: 'protopeers', session: i },
    onNonLazyError: (err) => fail(err),
    on: {
      connected: () => ack(),
      closed: (event) => closed(event)
    }
  })
  const run = (payload) => new Promise((resolve, reject) => {
    const results = []
    client.subscribe(payload, {
      next: (r) => results.push(r),
      error: (err) => reject(err),
      complete: () => resolve(results)
    })
  })
  await session(async () => {
    await withTimeout(Promise.race([acked, failed]), OP_TIMEOUT_MS, 'connection_ack')
    const state = {}
    for (const o of ops) {
      const results = await withTimeout(run(graphqlOp(o.op, i, state)), OP_TIMEOUT_MS, o.op)
      checkGraphQL(o.op, results, state)
      tally(o)
    }
  }, async () => {
    // Closes with 1000 Normal Closure.
    await client.dispose()
    await withTimeout(closedP, OP_TIMEOUT_MS, 'close')
  })
}

// graphql-ws: subscriptions-transport-ws SubscriptionClient over ws.
async function graphqlWSSession (i, ops, tally) {
  const WebSocket = require('ws')
  const { SubscriptionClient } = require('subscriptions-transport-ws')
  let ok, fail
  const connected = new Promise((resolve, reject) => { ok = resolve; fail = reject })
  const client = new SubscriptionClient(url, {
    reconnect: false,
    lazy: false,
    connectionParams: { client: 'protopeers', session: i },
    connectionCallback: (err) => err ? fail(new Error('connection_error: ' + errString(err))) : ok()
  }, WebSocket)
  const ws = client.client
  const closedP = new Promise((resolve) => ws.once('close', resolve))
  client.onError((err) => fail(err instanceof Error ? err : new Error(errString(err))))
  const run = (payload) => new Promise((resolve, reject) => {
    const results = []
    client.request(payload).subscribe({
      next: (r) => results.push(r),
      error: (err) => reject(err instanceof Error ? err : new Error(errString(err))),
      complete: () => resolve(results)
    })
  })
  await session(async () => {
    await withTimeout(connected, OP_TIMEOUT_MS, 'connection_ack')
    const state = {}
    for (const o of ops) {
      const results = await withTimeout(run(graphqlOp(o.op, i, state)), OP_TIMEOUT_MS, o.op)
      checkGraphQL(o.op, results, state)
      tally(o)
    }
  }, async () => {
    // Sends connection_terminate, then closes the socket.
    client.close()
    await withTimeout(closedP, OP_TIMEOUT_MS, 'close')
  })
}

// socket.io: socket.io-client over the websocket transport only.
async function socketIOSession (i, ops, tally) {
  const { io } = require('socket.io-client')
  const u = new URL(url)
  const path = u.pathname && u.pathname !== '/' ? u.pathname : '/socket.io/'
  const socket = io(u.protocol + '//' + u.host, {
    path,
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    timeout: OP_TIMEOUT_MS,
    auth: { client: 'protopeers', session: i }
  })
  const engineClosed = new Promise((resolve) => socket.io.once('close', resolve))
  const state = {}
  const call = (...a) => socket.timeout(OP_TIMEOUT_MS).emitWithAck(...a)
  const runOp = async (op) => {
    switch (op) {
      case 'tasks:list': {
        const list = await call('tasks:list')
        if (!Array.isArray(list)) throw new Error('tasks:list: got ' + JSON.stringify(list))
        return
      }
      case 'getTask': await call('getTask', '1'); return
      case 'createTask': state.created = (await call('createTask', { title: 'task of session ' + i })).id; return
      case 'tasks:update': await call('tasks:update', { id: '1', done: i % 2 === 0 }); return
      case 'deleteTask': await call('deleteTask', state.created || String(1000 + i)); return
      case 'upload': {
        const bytes = Buffer.alloc(64 + i, i % 256)
        const res = await call('upload', { name: 'blob-' + i + '.bin' }, bytes)
        if (!res || !res.ok || res.bytes !== bytes.length) throw new Error('upload: got ' + JSON.stringify(res))
        return
      }
      case 'subscribe': {
        const got = []
        await withTimeout(new Promise((resolve) => {
          const onTick = (t) => {
            got.push(t.i)
            if (t.i === t.n - 1) {
              socket.off('tick', onTick)
              resolve()
            }
          }
          socket.on('tick', onTick)
          socket.emit('subscribe', { n: ticks })
        }), OP_TIMEOUT_MS, 'subscribe')
        if (got.length !== ticks || got.some((v, k) => v !== k)) throw new Error('subscribe: got ticks ' + JSON.stringify(got))
        return
      }
    }
    throw new Error('no socket.io operation ' + op)
  }
  let opened = false
  await session(async () => {
    await withTimeout(new Promise((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('connect_error', reject)
    }), OP_TIMEOUT_MS, 'connect')
    opened = true
    for (const o of ops) {
      await runOp(o.op)
      tally(o)
    }
  }, async () => {
    // Sends the namespace DISCONNECT packet (41), then closes the socket.
    socket.disconnect()
    if (opened) await withTimeout(engineClosed, OP_TIMEOUT_MS, 'close')
  })
}

// json-rpc: rpc-websockets Client.
async function jsonRPCSession (i, ops, tally) {
  const { Client } = require('rpc-websockets')
  const client = new Client(url, { autoconnect: true, reconnect: false })
  const closedP = new Promise((resolve) => client.once('close', resolve))
  const state = {}
  const call = (method, params) => client.call(method, params, OP_TIMEOUT_MS)
  const runOp = async (op) => {
    switch (op) {
      case 'tasks.list': {
        const list = await call('tasks.list')
        if (!Array.isArray(list)) throw new Error('tasks.list: got ' + JSON.stringify(list))
        return
      }
      case 'getTask': await call('getTask', { id: '1' }); return
      case 'createTask': state.created = (await call('createTask', { title: 'task of session ' + i })).id; return
      case 'updateTask': await call('updateTask', { id: '1', done: i % 2 === 0 }); return
      case 'tasks.delete': await call('tasks.delete', [state.created || String(1000 + i)]); return
      case 'tasks.touch': await client.notify('tasks.touch', { id: '1' }); return
      case 'subscribe': {
        const got = []
        let done
        const all = new Promise((resolve) => { done = resolve })
        const onTick = (t) => {
          got.push(t.i)
          if (t.i === t.n - 1) done()
        }
        client.on('tick', onTick)
        try {
          const res = await client.subscribe('tick')
          if (!res || res.tick !== 'ok') throw new Error('rpc.on tick: got ' + JSON.stringify(res))
          await call('ticks.start', { n: ticks })
          await withTimeout(all, OP_TIMEOUT_MS, 'ticks')
          const off = await client.unsubscribe('tick')
          if (!off || off.tick !== 'ok') throw new Error('rpc.off tick: got ' + JSON.stringify(off))
        } finally {
          client.off('tick', onTick)
        }
        if (got.length !== ticks || got.some((v, k) => v !== k)) throw new Error('subscribe: got ticks ' + JSON.stringify(got))
        return
      }
    }
    throw new Error('no json-rpc operation ' + op)
  }
  let opened = false
  await session(async () => {
    await withTimeout(new Promise((resolve, reject) => {
      client.once('open', resolve)
      client.once('error', reject)
    }), OP_TIMEOUT_MS, 'open')
    opened = true
    for (const o of ops) {
      // rpc-websockets rejects with the JSON-RPC error object, not an Error.
      await runOp(o.op).catch((err) => { throw err instanceof Error ? err : new Error(o.op + ': ' + errString(err)) })
      tally(o)
    }
  }, async () => {
    client.close(1000)
    // rpc-websockets emits close only for a connection that opened.
    if (opened) await withTimeout(closedP, OP_TIMEOUT_MS, 'close')
  })
}

const sessionFns = {
  'graphql-transport-ws': graphqlTransportWSSession,
  'graphql-ws': graphqlWSSession,
  'socket.io': socketIOSession,
  'json-rpc': jsonRPCSession
}

// ---- the run ----

const summary = { sessions, ok: 0, failed: 0, reads: 0, writes: 0, subscriptions: 0, errors: [] }

let finished = false
function finish () {
  if (finished) return
  finished = true
  process.stdout.write(JSON.stringify(summary) + '\n', () => process.exit(summary.ok === sessions ? 0 : 1))
}

// A client library that throws from an event handler (subscriptions-
// transport-ws does on a message it does not know) ends the run with what
// was counted so far.
function crash (err) {
  summary.failed = sessions - summary.ok
  if (summary.errors.length < MAX_ERRORS) summary.errors.push('crash: ' + errString(err))
  finish()
}
process.on('uncaughtException', crash)
process.on('unhandledRejection', crash)

async function main () {
  let next = 0
  const worker = async () => {
    while (next < sessions) {
      const i = next++
      const ops = plan(i)
      const tally = (o) => {
        if (o.subscribe) summary.subscriptions++
        else if (o.write) summary.writes++
        else summary.reads++
      }
      try {
        await withTimeout(sessionFns[kind](i, ops, tally), sessionTimeoutMs, 'session ' + i)
        summary.ok++
      } catch (err) {
        summary.failed++
        if (summary.errors.length < MAX_ERRORS) summary.errors.push('session ' + i + ': ' + errString(err))
      }
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, sessions) }, worker))
  finish()
}

main().catch(crash)
