'use strict';
// The PostHog client API Artillery's lib/telemetry.js uses, with no network: capture and shutdown do nothing.
class PostHog {
  constructor() {}
  capture() {}
  identify() {}
  flush() { return Promise.resolve(); }
  shutdown() {}
  shutdownAsync() { return Promise.resolve(); }
}
module.exports = { PostHog, default: PostHog };
