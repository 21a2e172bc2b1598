// `zmesh keygen tenant|node`, `zmesh sign`, `zmesh verify`, `zmesh validate`.
import type { Command } from 'commander';

export function registerBlueprintCommands(_program: Command): void {
  // filled in by the blueprint work
}
