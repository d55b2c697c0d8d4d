-- The facts of analytics' Definitions (services/analytics/README.md, "Fact schema") as parameterized views over
-- servicetrail_events, as they stood at {as_of}: only events recorded by then, so a past dashboard reproduces
-- and a late correction shows as a restatement. For the live numbers pass a moment in the future.
--   SELECT * FROM servicetrail_request_facts(as_of = '2026-12-01 00:00:00')
-- "First" is by business order (time, sequence, recordedat, event_id); an SLA breach counts unless the source's
-- later decision for the same kind withdrew it.

CREATE VIEW IF NOT EXISTS servicetrail_job_facts AS
SELECT
    j.job_id                                                                          AS job_id,
    j.req                                                                             AS request_id,
    j.created_at, j.assignments, j.first_assigned_at, j.first_accepted_at, j.first_arrived_at,
    j.first_completed_at, j.first_fixed, j.fixed_at, j.completions, j.unfixed_completions,
    coalesce(b.breached, 0)                                                           AS sla_breached,
    -- assigned when the job was first completed: the latest assignment at or before that completion
    if(j.first_completed_at IS NULL, NULL,
       coalesce(arrayLast(a -> a.1 <= j.first_key, j.assigned).2, j.first_completer)) AS job_technician,
    if(j.first_completed_at IS NULL, NULL, arrayLast(a -> a.1 <= j.first_key, j.assigned).3) AS job_center
FROM
(
    SELECT
        job_id,
        any(request_id)                                                               AS req,
        minIf(toNullable(time), type = 'job.created')                                 AS created_at,
        countIf(type = 'job.assigned')                                                AS assignments,
        minIf(toNullable(time), type = 'job.assigned')                                AS first_assigned_at,
        minIf(toNullable(time), type = 'job.accepted')                                AS first_accepted_at,
        minIf(toNullable(time), type = 'job.arrived')                                 AS first_arrived_at,
        minIf(toNullable(time), type = 'job.completed')                               AS first_completed_at,
        argMinIf(fixed, (time, sequence, recordedat, event_id), type = 'job.completed') AS first_fixed,
        argMinIf(technician_id, (time, sequence, recordedat, event_id), type = 'job.completed') AS first_completer,
        minIf((time, sequence, recordedat, event_id), type = 'job.completed')         AS first_key,
        minIf(toNullable(time), type = 'job.completed' AND fixed = 1)                 AS fixed_at,
        countIf(type = 'job.completed')                                               AS completions,
        countIf(type = 'job.completed' AND fixed = 0)                                 AS unfixed_completions,
        arraySort(groupArrayIf(((time, sequence, recordedat, event_id), technician_id, center_id),
                               type = 'job.assigned'))                                AS assigned
    FROM servicetrail_events FINAL
    WHERE recordedat <= {as_of:DateTime64(6, 'UTC')} AND job_id IS NOT NULL AND request_id IS NOT NULL
      AND type NOT IN ('complaint.opened', 'revisit.done')
    GROUP BY job_id
) AS j
LEFT JOIN
(
    SELECT job_id, max(latest = 'job.sla_breached') AS breached
    FROM
    (
        SELECT job_id, kind, argMax(type, (recordedat, sequence, time, event_id)) AS latest
        FROM servicetrail_events FINAL
        WHERE recordedat <= {as_of:DateTime64(6, 'UTC')}
          AND type IN ('job.sla_breached', 'job.sla_breach_withdrawn')
        GROUP BY job_id, kind
    )
    GROUP BY job_id
) AS b ON b.job_id = j.job_id;

CREATE VIEW IF NOT EXISTS servicetrail_request_facts AS
WITH
    owned AS
    (
        -- a request's events, and complaints that name only one of its jobs (linked by the job's own events)
        SELECT e.*, coalesce(e.request_id, m.linked_request) AS owner
        FROM servicetrail_events AS e FINAL
        LEFT JOIN
        (
            SELECT job_id, any(request_id) AS linked_request FROM servicetrail_events FINAL
            WHERE recordedat <= {as_of:DateTime64(6, 'UTC')} AND job_id IS NOT NULL AND request_id IS NOT NULL
              AND type != 'complaint.opened'
            GROUP BY job_id
        ) AS m ON e.job_id = m.job_id AND e.request_id IS NULL AND e.type = 'complaint.opened'
        WHERE e.recordedat <= {as_of:DateTime64(6, 'UTC')}
    ),
    requests AS
    (
        SELECT
            owner                                                                      AS rid,
            minIf(toNullable(time), type = 'service_request.received')                 AS received_at,
            coalesce(argMinIf(dealer_id, (time, sequence, recordedat, event_id), type = 'service_request.received'),
                     argMinIf(dealer_id, (time, sequence, recordedat, event_id), type = 'job.created')) AS dealer,
            countIf(type IN ('service_request.received', 'job.created')) > 0          AS has_origin,
            coalesce(argMinIf(region, (time, sequence, recordedat, event_id), type = 'service_request.received'),
                     argMinIf(region, (time, sequence, recordedat, event_id), type = 'job.created')) AS request_region,
            coalesce(argMinIf(product_line, (time, sequence, recordedat, event_id), type = 'service_request.received'),
                     argMinIf(product_line, (time, sequence, recordedat, event_id), type = 'job.created')) AS request_line,
            minIf(toNullable(time), type = 'service_request.triaged')                  AS triaged_at,
            argMinIf(mode, (time, sequence, recordedat, event_id), type = 'service_request.triaged') AS triage_mode,
            countIf(type = 'service_request.escalated') > 0                            AS escalated,
            minIf(toNullable(time), type = 'service_request.cancelled')                AS cancelled_at,
            minIf(toNullable(time), type = 'job.assigned')                             AS first_assigned_at,
            minIf(toNullable(time), type = 'job.accepted')                             AS first_accepted_at,
            minIf(toNullable(time), type = 'job.arrived')                              AS first_arrived_at,
            minIf(toNullable(time), type = 'job.completed' AND fixed = 1)              AS first_fixed_at,
            minIf(toNullable(time), type = 'revisit.done')                             AS first_revisit_at,
            uniqExactIf(coalesce(complaint_id, event_id), type = 'complaint.opened')   AS complaints
        FROM owned
        WHERE owner IS NOT NULL
        GROUP BY owner
    ),
    jobs AS
    (
        SELECT request_id, count() AS jobs, countIf(completions > 0) AS jobs_completed,
               countIf(first_fixed = 1) AS jobs_first_fixed, countIf(completions > 0 AND sla_breached = 0) AS jobs_sla_met,
               countIf(assignments >= 2) AS jobs_reassigned, sum(unfixed_completions) AS repeat_visits,
               argMinIf(job_technician, first_completed_at, completions > 0) AS technician,
               argMinIf(job_center, first_completed_at, completions > 0) AS center
        FROM servicetrail_job_facts(as_of = {as_of:DateTime64(6, 'UTC')})
        GROUP BY request_id
    )
SELECT
    r.rid AS request_id, r.received_at, r.dealer AS dealer_id,
    if(r.has_origin, coalesce(r.dealer, 'direct'), NULL)                               AS dealer_key,
    r.request_region AS region, r.request_line AS product_line, r.triaged_at, r.triage_mode, coalesce(r.triage_mode = 'phone', 0) AS phone_triaged,
    r.escalated, r.cancelled_at, r.first_assigned_at, r.first_accepted_at, r.first_arrived_at,
    multiIf(r.triage_mode = 'phone' AND r.first_fixed_at IS NOT NULL, least(r.triaged_at, r.first_fixed_at),
            r.triage_mode = 'phone', r.triaged_at, r.first_fixed_at)                    AS resolved_at,
    r.first_revisit_at, j.technician AS technician_id, j.center AS center_id,
    coalesce(j.jobs, 0) AS jobs, coalesce(j.jobs_completed, 0) AS jobs_completed,
    coalesce(j.jobs_first_fixed, 0) AS jobs_first_fixed, coalesce(j.jobs_sla_met, 0) AS jobs_sla_met,
    coalesce(j.jobs_reassigned, 0) AS jobs_reassigned, coalesce(j.repeat_visits, 0) AS repeat_visits,
    r.complaints
FROM requests AS r
LEFT JOIN jobs AS j ON j.request_id = r.rid;
