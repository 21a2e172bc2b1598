// The agent's Node flags are the same for labs and for the systemd unit operators install.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { AGENT_NODE_FLAGS } from '../../labs/agents.ts';

test('deploy/zmesh-agent.service starts node with the lab agents\' flags', () => {
  const unit = readFileSync(new URL('../../deploy/zmesh-agent.service', import.meta.url), 'utf8');
  const exec = unit.split('\n').find((l) => l.startsWith('ExecStart='));
  assert.equal(exec, `ExecStart=/usr/bin/env node ${AGENT_NODE_FLAGS.join(' ')} /opt/zmesh/dist/src/cli/main.js agent --config /etc/zmesh/agent.yaml`);
  assert.deepEqual(AGENT_NODE_FLAGS, ['--max-semi-space-size=2', '--optimize-for-size', '--no-opt']);
});
