/** Every pg-boss queue tusbox uses, with the data its jobs carry. */
export interface JobPayloads {
  'outbox.deliver': { readonly eventId: string }
}

export type JobName = keyof JobPayloads

export const JOB_NAMES: readonly JobName[] = ['outbox.deliver']
