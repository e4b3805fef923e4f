// A real websocket protocol server for preheat's end-to-end tests.
//
//   node server.js --kind KIND [--port 0] [--ping-ms 0]
//
// KIND is one of graphql-transport-ws (graphql-ws), graphql-ws
// (subscriptions-transport-ws), socket.io or json-rpc (rpc-websockets). Every
// kind serves the same small in-memory task store. The server binds
// 127.0.0.1 only, prints one JSON line once listening:
//
//   {"kind":"…","ws":"ws://127.0.0.1:PORT/PATH","path":"/PATH","counters":"http://127.0.0.1:PORT/counters"}
//
// and exits on SIGTERM or SIGINT or when stdin closes, so a test that dies
// cannot leave it running.
//
// GET /counters answers what the server itself saw, as JSON: connections,
// handshakes, reads answered, writes executed, subscriptions completed and
// protocol errors. Protocol errors are counted from the libraries' own hooks
// (a close code chosen by graphql-ws, an error message sent by
// subscriptions-transport-ws, an Engine.IO close reason or a CONNECT_ERROR
// packet encoded by socket.io, an error response encoded by rpc-websockets),
// never by parsing the protocols here; protocolErrorsByKind says which.
//
// --ping-ms sets the server's heartbeat where the library has one: ws ping
// frames for graphql-transport-ws (default 12000), "ka" messages for
// graphql-ws (default none), the Engine.IO ping for socket.io (default
// 25000). rpc-websockets has no server heartbeat; json-rpc ignores it.
'use strict'

const http = require('http')
const { parseArgs } = require('util')

const KINDS = ['graphql-transport-ws', 'graphql-ws', 'socket.io', 'json-rpc']
// TICK_MS is the pause before each subscription value.
const TICK_MS = 20
// MAX_TICKS bounds how many values one subscription may ask for.
const MAX_TICKS = 100

function usage (msg) {
  if (msg) console.error('server.js: ' + msg)
  console.error('usage: node server.js --kind ' + KINDS.join('|') + ' [--port 0] [--ping-ms 0]')
  process.exit(2)
}

let args
try {
  args = parseArgs({
    options: {
      kind: { type: 'string' },
      port: { type: 'string', default: '0' },
      'ping-ms': { type: 'string', default: '0' }
    }
  }).values
} catch (err) {
  usage(err.message)
}
const kind = args.kind
const port = Number(args.port)
const pingMs = Number(args['ping-ms'])
if (!KINDS.includes(kind)) usage('unknown kind ' + JSON.stringify(kind))
if (!Number.isInteger(port) || port < 0 || port > 65535) usage('bad port ' + JSON.stringify(args.port))
if (!Number.isInteger(pingMs) || pingMs < 0) usage('bad ping-ms ' + JSON.stringify(args['ping-ms']))

// ---- counters ----

const counters = {
  connections: 0,
  handshakes: 0,
  reads: 0,
  writes: 0,
  protocolErrors: 0,
  subscriptionsCompleted: 0,
  readsByKind: {},
  writesByKind: {},
  protocolErrorsByKind: {}
}

function bump (byKind, name) {
  byKind[name] = (byKind[name] || 0) + 1
}
function read (name) {
  counters.reads++
  bump(counters.readsByKind, name)
}
function write (name) {
  counters.writes++
  bump(counters.writesByKind, name)
}
function protocolError (name) {
  counters.protocolErrors++
  bump(counters.protocolErrorsByKind, name)
}

// ---- the task store ----

const tasks = new Map()
let nextId = 1
function createTask (title) {
  const t = { id: String(nextId++), title: String(title), done: false }
  tasks.set(t.id, t)
  return t
}
createTask('write the docs')
createTask('review the tap')
createTask('warm the cache')
const me = { id: 'u1', name: 'Ada' }

function listTasks () { return [...tasks.values()] }
function getTask (id) { return tasks.get(String(id)) || null }
function updateTask (id, patch) {
  const t = tasks.get(String(id))
  if (!t) return null
  if (typeof patch.title === 'string') t.title = patch.title
  if (typeof patch.done === 'boolean') t.done = patch.done
  return t
}
function deleteTask (id) { return tasks.delete(String(id)) }

// uploaded counts the bytes received by socket.io's binary upload event.
let uploaded = 0

function clampTicks (n) {
  n = Number(n)
  if (!Number.isInteger(n) || n < 1) return 1
  return Math.min(n, MAX_TICKS)
}
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

// ---- GraphQL, shared by both GraphQL kinds ----

function graphqlSchema () {
  const { buildSchema } = require('graphql')
  const schema = buildSchema(`
    type Task { id: ID!, title: String!, done: Boolean! }
    type User { id: ID!, name: String! }
    type Query {
      tasks: [Task!]!
      task(id: ID!): Task
      me: User!
    }
    type Mutation {
      createTask(title: String!): Task!
      updateTask(id: ID!, title: String, done: Boolean): Task
      deleteTask(id: ID!): Boolean!
    }
    type Subscription {
      taskTicks(n: Int!): Int!
    }
  `)
  const roots = {
    query: {
      tasks: () => { read('tasks'); return listTasks() },
      task: ({ id }) => { read('task'); return getTask(id) },
      me: () => { read('me'); return me }
    },
    mutation: {
      createTask: ({ title }) => { write('createTask'); return createTask(title) },
      updateTask: ({ id, title, done }) => { write('updateTask'); return updateTask(id, { title, done }) },
      deleteTask: ({ id }) => { write('deleteTask'); return deleteTask(id) }
    },
    subscription: {
      // Emits n values TICK_MS apart, then completes. A subscription that
      // ends early (the client stops it or goes away) is not counted.
      taskTicks: async function * ({ n }) {
        n = clampTicks(n)
        for (let i = 0; i < n; i++) {
          await sleep(TICK_MS)
          yield { taskTicks: i }
        }
        counters.subscriptionsCompleted++
      }
    }
  }
  return { schema, roots }
}

// countServerCloses counts a connection the server closes with an error
// close code while it is open, or terminates (graphql-ws does when a ws
// ping goes unanswered), at most once a connection and not if an error was
// counted for it already (erred). It must run before the library's own
// connection listener, which may close the socket at once.
function countServerCloses (wss, isErrorCode, erred) {
  wss.prependListener('connection', (socket) => {
    counters.connections++
    const count = (what) => {
      if (socket.readyState === socket.OPEN && !erred.has(socket)) {
        erred.add(socket)
        protocolError(what)
      }
    }
    const close = socket.close
    socket.close = function (code, reason) {
      if (isErrorCode(code)) count('close ' + code)
      return close.call(this, code, reason)
    }
    const terminate = socket.terminate
    socket.terminate = function () {
      count('terminate')
      return terminate.call(this)
    }
  })
}

function startGraphQLTransportWS (server) {
  const { WebSocketServer } = require('ws')
  const { useServer } = require('graphql-ws/use/ws')
  const { schema, roots } = graphqlSchema()
  const wss = new WebSocketServer({ server, path: '/graphql' })
  // graphql-ws closes with 4400 (bad message), 4401 (subscribe before
  // ack), 4403, 4406 (subprotocol), 4408 (init timeout), 4409 (duplicate
  // id), 4429 (second init) and 4500 (unexpected message type).
  countServerCloses(wss, (code) => code >= 4000, new WeakSet())
  useServer({
    schema,
    roots,
    onConnect: () => { counters.handshakes++; return true }
  }, wss, pingMs > 0 ? pingMs : undefined)
  return '/graphql'
}

function startGraphQLWS (server) {
  const { execute, subscribe } = require('graphql')
  const { SubscriptionServer } = require('subscriptions-transport-ws')
  const { schema, roots } = graphqlSchema()
  const ss = SubscriptionServer.create({
    schema,
    execute,
    subscribe,
    rootValue: Object.assign({}, roots.query, roots.mutation, roots.subscription),
    onConnect: () => { counters.handshakes++; return true },
    keepAlive: pingMs > 0 ? pingMs : undefined
  }, { server, path: '/graphql' })
  // subscriptions-transport-ws answers a bad message (not JSON, an unknown
  // type) with connection_error or error and keeps the socket open; it
  // closes with 1002 for a wrong subprotocol and 1011 after a rejected
  // connection_init.
  const erred = new WeakSet()
  countServerCloses(ss.server, (code) => code === 1002 || code === 1011 || code >= 4000, erred)
  const sendError = ss.sendError
  ss.sendError = function (ctx, opId, payload, type) {
    // The library also calls sendError from its close handler, with the
    // close code as the error; nothing is sent then, and nothing counted.
    if (ctx.socket.readyState === ctx.socket.OPEN) {
      erred.add(ctx.socket)
      protocolError(type || 'error')
    }
    return sendError.apply(this, arguments)
  }
  return '/graphql'
}

// ---- Socket.IO ----

function startSocketIO (server) {
  const { Server } = require('socket.io')
  const parser = require('socket.io-parser')
  // socket.io sends CONNECT_ERROR for an unknown namespace or a rejected
  // connect; the real encoder still encodes it, this only counts it.
  class CountingEncoder extends parser.Encoder {
    encode (packet) {
      if (packet.type === parser.PacketType.CONNECT_ERROR) protocolError('connect_error')
      return super.encode(packet)
    }
  }
  const opts = {
    path: '/socket.io/',
    transports: ['websocket'],
    serveClient: false,
    parser: Object.assign({}, parser, { Encoder: CountingEncoder })
  }
  // With --ping-ms the client also has only that long to answer a ping, so
  // that a client which does not answer is closed within the test.
  if (pingMs > 0) opts.pingInterval = opts.pingTimeout = pingMs
  const io = new Server(server, opts)
  // A handshake Engine.IO refuses (bad transport, sid or protocol version).
  io.engine.on('connection_error', (err) => protocolError('engine connection_error ' + err.code))
  // The application never closes a connection itself, so every close the
  // server makes is for a protocol error: a packet Engine.IO cannot parse
  // ("parse error"), a packet socket.io cannot decode or one in the wrong
  // state ("forced close"), a bad frame ("transport error"), or a missing
  // pong ("ping timeout"). A client going away is "transport close".
  const errorReasons = new Set(['parse error', 'forced close', 'transport error', 'ping timeout'])
  io.engine.on('connection', (conn) => {
    counters.connections++
    conn.once('close', (reason) => {
      if (errorReasons.has(reason)) protocolError('engine ' + reason)
    })
  })
  io.on('connection', (socket) => {
    counters.handshakes++
    const answer = (name, ack, value) => {
      if (typeof ack !== 'function') return
      read(name)
      ack(value)
    }
    socket.on('tasks:list', (ack) => answer('tasks:list', ack, listTasks()))
    socket.on('getTask', (id, ack) => answer('getTask', ack, getTask(id)))
    socket.on('createTask', (req, ack) => {
      write('createTask')
      const t = createTask(req && req.title)
      if (typeof ack === 'function') ack(t)
    })
    socket.on('tasks:update', (req, ack) => {
      write('tasks:update')
      const t = updateTask(req && req.id, req || {})
      if (typeof ack === 'function') ack(t)
    })
    socket.on('deleteTask', (id, ack) => {
      write('deleteTask')
      const ok = deleteTask(id)
      if (typeof ack === 'function') ack(ok)
    })
    // A binary event: socket.io sends it as a BINARY_EVENT with a
    // placeholder, then the bytes as a binary frame.
    socket.on('upload', (meta, data, ack) => {
      if (!Buffer.isBuffer(data)) {
        if (typeof ack === 'function') ack({ ok: false, error: 'want bytes' })
        return
      }
      write('upload')
      uploaded += data.length
      if (typeof ack === 'function') ack({ ok: true, bytes: data.length, total: uploaded })
    })
    socket.on('subscribe', async (req) => {
      const n = clampTicks(req && req.n)
      for (let i = 0; i < n; i++) {
        await sleep(TICK_MS)
        if (!socket.connected) return
        socket.emit('tick', { i, n })
      }
      counters.subscriptionsCompleted++
    })
  })
  return '/socket.io/'
}

// ---- JSON-RPC 2.0 (rpc-websockets) ----

function startJSONRPC (server) {
  const { Server, DefaultDataPack } = require('rpc-websockets')
  const NS = '/rpc'
  // rpc-websockets encodes every reply through its DataPack; this one counts
  // the error responses the library builds for bad requests (-32700 parse
  // error, -32600 invalid request, -32601 method not found, -32602 and the
  // library's -32604..-32606). The methods below never throw, so every
  // error response is a protocol error.
  class CountingDataPack extends DefaultDataPack {
    encode (value) {
      for (const m of [].concat(value)) {
        if (m && typeof m === 'object' && m.error) protocolError('rpc ' + m.error.code)
      }
      return super.encode(value)
    }
  }
  const rpc = new Server({ server, path: NS }, new CountingDataPack())
  rpc.on('connection', () => {
    counters.connections++
    counters.handshakes++
  })
  rpc.on('socket-error', (socket, err) => console.error('json-rpc: socket error: ' + err.message))
  const param = (params, name, index) => {
    if (Array.isArray(params)) return params[index]
    return params && typeof params === 'object' ? params[name] : undefined
  }
  rpc.register('tasks.list', () => { read('tasks.list'); return listTasks() }, NS)
  rpc.register('getTask', (params) => { read('getTask'); return getTask(param(params, 'id', 0)) }, NS)
  rpc.register('createTask', (params) => { write('createTask'); return createTask(param(params, 'title', 0)) }, NS)
  rpc.register('updateTask', (params) => {
    write('updateTask')
    return updateTask(param(params, 'id', 0), { title: param(params, 'title', 1), done: param(params, 'done', 2) })
  }, NS)
  rpc.register('tasks.delete', (params) => { write('tasks.delete'); return deleteTask(param(params, 'id', 0)) }, NS)
  // Sent as a JSON-RPC notification (no id): executed, never answered.
  rpc.register('tasks.touch', (params) => {
    write('tasks.touch')
    const t = getTask(param(params, 'id', 0))
    if (t) t.touched = (t.touched || 0) + 1
    return null
  }, NS)

  // The tick event: a client subscribes with rpc.on ["tick"] (answered by
  // the library), then calls ticks.start {n}. rpc-websockets only
  // broadcasts an event to every subscriber, which would let concurrent
  // sessions see each other's ticks, so ticks.start sends the library's
  // notification message ({"notification":"tick","params":…}, encoded by
  // its DataPack) to the caller alone, and only if it subscribed.
  rpc.event('tick', NS)
  rpc.register('ticks.start', (params, socketId) => {
    const ns = rpc.namespaces[NS]
    if (!ns.events.tick.sockets.includes(socketId)) throw new Error('not subscribed to tick')
    const n = clampTicks(param(params, 'n', 0))
    ;(async () => {
      for (let i = 0; i < n; i++) {
        await sleep(TICK_MS)
        const socket = ns.clients.get(socketId)
        if (!socket || socket.readyState !== 1 || !ns.events.tick.sockets.includes(socketId)) return
        socket.send(rpc.dataPack.encode({ notification: 'tick', params: { i, n } }))
      }
      counters.subscriptionsCompleted++
    })()
    return { n }
  }, NS)
  return NS
}

// ---- the HTTP server ----

const server = http.createServer((req, res) => {
  if (req.method === 'GET' && req.url.split('?')[0] === '/counters') {
    const body = JSON.stringify(counters)
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
    return
  }
  res.writeHead(404, { 'content-type': 'text/plain' })
  res.end('not found\n')
})

const starters = {
  'graphql-transport-ws': startGraphQLTransportWS,
  'graphql-ws': startGraphQLWS,
  'socket.io': startSocketIO,
  'json-rpc': startJSONRPC
}
const wsPath = starters[kind](server)

server.on('error', (err) => {
  console.error('server.js: ' + err.message)
  process.exit(1)
})

server.listen(port, '127.0.0.1', () => {
  const p = server.address().port
  process.stdout.write(JSON.stringify({
    kind,
    ws: 'ws://127.0.0.1:' + p + wsPath,
    path: wsPath,
    counters: 'http://127.0.0.1:' + p + '/counters'
  }) + '\n')
})

function stop () {
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.stdin.on('end', stop)
process.stdin.on('close', stop)
process.stdin.resume()
