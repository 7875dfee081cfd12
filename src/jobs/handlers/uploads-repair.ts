import { type RepairDeps, repairStalledUploads } from '../../uploads/repair.ts'

export function uploadsRepairHandler(deps: RepairDeps) {
  return () => repairStalledUploads(deps)
}
