// The types of undici's Pool module, imported by its path (peer-channels.ts says why).
declare module 'undici/lib/dispatcher/pool.js' {
  import { Pool } from 'undici';
  export default Pool;
}
