// `zmesh plan`.
import type { Command } from 'commander';

export function registerPlanCommands(_program: Command): void {
  // filled in by the planner work
}
