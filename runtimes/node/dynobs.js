'use strict';
// dynobs for Node.js: loaded with `node --require` (dynobs-run puts it in
// NODE_OPTIONS). On Node's event loop the shim cannot tell from below
// which request an outbound call belongs to; Node can. This file keeps
// each HTTP request's context (the shim's server span) across Node's
// callbacks with AsyncLocalStorage, and announces it to the shim as the
// parent of each outbound request just before that request is written.
// It talks to the shim through readlink() on paths under /dev/dynobs/,
// which only the shim answers: without it, nothing happens.
//
// It never throws into the application and never changes what the
// application sends: headers are not touched.

const { AsyncLocalStorage } = require('async_hooks');
const dc = require('diagnostics_channel');
const fs = require('fs');

const store = new AsyncLocalStorage();

function fdOf(socket) {
  const fd = socket && socket._handle && socket._handle.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : -1;
}

function ask(path) {
  try {
    return fs.readlinkSync('/dev/dynobs/' + path);
  } catch (e) {
    return undefined;
  }
}

// A request arrives: the rest of its handling, and everything it starts
// (callbacks, timers, promises), runs in its context.
dc.subscribe('http.server.request.start', (msg) => {
  const fd = fdOf(msg.socket || (msg.request && msg.request.socket));
  store.enterWith(fd >= 0 ? ask('server/' + fd) : undefined);
});

// An outbound request made in a request's context is announced on its
// socket once that socket is connected (the shim forgets what a socket
// number carried when it connects: libuv closes sockets with a raw system
// call the shim cannot see) and before its head is written: a new
// socket's first write waits for 'connect', and our listener goes first.
function announce(socket, traceparent) {
  const fd = fdOf(socket);
  if (fd >= 0)
    ask('client/' + fd + '/' + traceparent);
}

function whenConnected(socket, traceparent) {
  if (socket.connecting)
    socket.prependOnceListener('connect', () => announce(socket, traceparent));
  else
    announce(socket, traceparent);
}

// http.request and http.get (and https's), wrapped: a request gets its
// socket in a later tick ('socket' is emitted just before its head is
// flushed), so the context is taken when the request is made.
function follow(req) {
  try {
    const traceparent = store.getStore();
    if (!traceparent || !req || typeof req.once !== 'function')
      return req;
    if (req.socket && !req.headersSent)
      whenConnected(req.socket, traceparent);
    else
      req.once('socket', (socket) => whenConnected(socket, traceparent));
  } catch (e) {
    // Never into the application: the request goes untraced.
  }
  return req;
}

for (const mod of [require('http'), require('https')]) {
  for (const name of ['request', 'get']) {
    const original = mod[name];
    mod[name] = function dynobsWrapped(...args) {
      return follow(original.apply(this, args));
    };
  }
}
