/**
 * A throw-away store for tests and embedding: the embedded store's engine on
 * an in-memory SQLite database, so both behave identically.
 */
import { EmbeddedStore } from './embedded.js';

export class MemoryStore extends EmbeddedStore {
  constructor() {
    super(':memory:');
  }
}
