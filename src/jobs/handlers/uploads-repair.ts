import { type RepairDeps, repair } from '../../uploads/repair.ts'

export function uploadsRepairHandler(deps: RepairDeps) {
  return () => repair(deps)
}
