// Starts kinesalite, an in-memory Kinesis-compatible server, for preheat's
// tests. It binds 127.0.0.1 only (kinesalite's own CLI binds every
// interface), on the port given as the first argument (0 picks a free one),
// prints "LISTENING <port>" once bound, and exits when stdin closes or on
// SIGTERM or SIGINT, so a test that dies cannot leave it running. A second
// argument names a directory where it keeps its streams (LevelDB) instead
// of memory, so that a server killed and started again on the same
// directory still has them.
'use strict'

// kinesalite answers GetShardIterator AT_TIMESTAMP by scanning the shard for
// the first record at or after the timestamp, and never answers when there
// is none (actions/getShardIterator.js: lazy(...).filter(...).head(cb));
// the hung request then stalls later calls on the stream. Kinesis returns an
// iterator at the shard's end instead. This wraps the action before
// kinesalite loads it: when no record qualifies, the request is answered as
// LATEST.
const db = require('kinesalite/db')
const actionPath = require.resolve('kinesalite/actions/getShardIterator')
const getShardIterator = require(actionPath)
require.cache[actionPath].exports = function getShardIteratorAtTimestamp (store, data, cb) {
  if (data.ShardIteratorType !== 'AT_TIMESTAMP' || data.Timestamp == null || data.Timestamp * 1000 > Date.now()) {
    return getShardIterator(store, data, cb)
  }
  let shardIx
  try {
    shardIx = db.resolveShardId(data.ShardId).shardIx
  } catch (e) {
    return getShardIterator(store, data, cb)
  }
  let found = false
  const records = store.getStreamDb(data.StreamName).createReadStream({
    gt: db.shardIxToHex(shardIx),
    lt: db.shardIxToHex(shardIx + 1)
  })
  records.on('data', (item) => {
    if (!found && item.value.ApproximateArrivalTimestamp >= data.Timestamp) {
      found = true
      records.destroy()
      getShardIterator(store, data, cb)
    }
  })
  records.on('error', (err) => { if (!found) { found = true; cb(err) } })
  records.on('end', () => {
    if (!found) {
      found = true
      getShardIterator(store, Object.assign({}, data, { ShardIteratorType: 'LATEST', Timestamp: undefined }), cb)
    }
  })
}

const kinesalite = require('kinesalite')

const port = Number(process.argv[2] || 0)
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('usage: node server.js PORT [DIR] (0 picks a free port)')
  process.exit(2)
}

const server = kinesalite({
  createStreamMs: 0,
  deleteStreamMs: 0,
  updateStreamMs: 0,
  shardLimit: 100,
  path: process.argv[3] || undefined
})

// kinesalite throws from a request's 'error' handler when a client hangs up
// mid-request (index.js: req.on('error', function(err) { throw err })), which
// would end the whole server. Kinesis does not care when a caller cancels a
// request, so neither do we: such aborts are ignored; anything else still
// ends the process.
process.on('uncaughtException', (err) => {
  if (err && (err.code === 'ECONNRESET' || err.message === 'aborted')) {
    return
  }
  console.error(err)
  process.exit(1)
})

server.on('error', (err) => {
  console.error('kinesalite: ' + err.message)
  process.exit(1)
})

server.listen(port, '127.0.0.1', () => {
  process.stdout.write('LISTENING ' + server.address().port + '\n')
})

function stop () {
  server.close()
  process.exit(0)
}

process.on('SIGTERM', stop)
process.on('SIGINT', stop)
process.stdin.on('end', stop)
process.stdin.on('close', stop)
process.stdin.resume()
