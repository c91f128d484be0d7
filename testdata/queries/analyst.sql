-- Ordinary analyst queries against the committed testdata, one per entry: a comment naming what
-- it asks, then the query. engine/analyst_test.go runs each end to end and reports the share that
-- runs (issue 15's target: at least 85%).
--
-- A query that is refused is followed by the rewrite its refusal's hint suggests, as an entry
-- whose comment reads "rewrite: <what>; hint: <words the refusal carries>". The test checks that
-- the refusal carries those words and that the rewrite runs; rewrites do not count in the share.

-- visits by district
SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district ORDER BY visits DESC;

-- visits by month
SELECT date_trunc('month', visit_date) AS month, COUNT(*) AS visits FROM medical_visits GROUP BY month ORDER BY month;

-- the ten most frequent diagnoses
SELECT diagnosis, COUNT(*) AS visits FROM medical_visits GROUP BY diagnosis ORDER BY visits DESC LIMIT 10;

-- average cost by age group
SELECT age_band, AVG(cost) AS mean_cost FROM medical_visits GROUP BY age_band;

-- total cost by month
SELECT date_trunc('month', visit_date) AS month, SUM(cost) AS total FROM medical_visits GROUP BY month;

-- the ten hospitals with the highest total cost
SELECT hospital_id, SUM(cost) AS total FROM medical_visits GROUP BY hospital_id ORDER BY total DESC LIMIT 10;

-- the largest visit cost
SELECT MAX(cost) AS largest FROM medical_visits;

-- median cost of inpatient and outpatient visits
SELECT inpatient, MEDIAN(cost) AS median_cost FROM medical_visits GROUP BY inpatient;

-- districts with more than 100 visits
SELECT district, COUNT(*) AS visits FROM medical_visits GROUP BY district HAVING COUNT(*) > 100;

-- age groups whose average cost lies in a band
SELECT age_band, AVG(cost) AS mean_cost FROM medical_visits GROUP BY age_band HAVING AVG(cost) BETWEEN 100 AND 5000;

-- reimbursement ratio by district (a ratio of two sums)
SELECT district, SUM(reimbursed) / SUM(amount) AS reimbursed_share FROM insurance_claims GROUP BY district;

-- share of circulatory diagnoses by district
SELECT district, AVG(CASE WHEN diagnosis LIKE 'I%' THEN 1 ELSE 0 END) AS circulatory_share FROM medical_visits GROUP BY district;

-- expensive visits by age group
SELECT age_band, SUM(CASE WHEN cost > 1000 THEN 1 ELSE 0 END) AS expensive FROM medical_visits GROUP BY age_band;

-- each district's share of all visits (a window over released rows)
SELECT district, COUNT(*) * 100.0 / SUM(COUNT(*)) OVER () AS pct FROM medical_visits GROUP BY district;

-- month-over-month change in visits
SELECT date_trunc('month', visit_date) AS month, COUNT(*) AS visits, COUNT(*) - LAG(COUNT(*)) OVER (ORDER BY month) AS change FROM medical_visits GROUP BY month;

-- change between consecutive districts, from a WITH query
WITH t AS (SELECT district, COUNT(*) AS n FROM medical_visits GROUP BY district) SELECT district, n, n - LAG(n) OVER (ORDER BY district) AS change FROM t;

-- percentage of inpatient visits by age group
SELECT age_band, 100.0 * SUM(CASE WHEN inpatient THEN 1 ELSE 0 END) / COUNT(*) AS pct_inpatient FROM medical_visits GROUP BY age_band;

-- average cost rounded to one decimal by district
SELECT district, ROUND(AVG(cost), 1) AS mean_cost FROM medical_visits GROUP BY district ORDER BY mean_cost DESC;

-- rank of hospitals by visits
SELECT hospital_id, COUNT(*) AS visits, RANK() OVER (ORDER BY COUNT(*) DESC) AS r FROM medical_visits GROUP BY hospital_id ORDER BY r LIMIT 5;

-- persons with visits by district
SELECT district, COUNT(DISTINCT person_id) AS persons FROM medical_visits GROUP BY district;

-- visits per person by district (a ratio of a count to a count of units)
SELECT district, COUNT(*) * 1.0 / COUNT(DISTINCT person_id) AS visits_per_person FROM medical_visits GROUP BY district;

-- claims by income band (a join on the person)
SELECT r.income_band, COUNT(*) AS claims, AVG(c.amount) AS mean_amount FROM insurance_claims c JOIN residents r ON c.person_id = r.person_id GROUP BY r.income_band;

-- visits by ICD-10 chapter title (a public lookup table)
SELECT i.title, COUNT(*) AS visits FROM medical_visits v LEFT JOIN icd10_chapters i ON v.diagnosis_chapter = i.letter GROUP BY i.title;

-- average yearly cost per person
SELECT AVG(total) AS mean_per_person FROM (SELECT person_id, LEAST(SUM(cost), 200000) AS total FROM medical_visits GROUP BY person_id) AS t;

-- distribution of visits per person
SELECT n, COUNT(*) AS persons FROM (SELECT person_id, LEAST(COUNT(*), 10) AS n FROM medical_visits GROUP BY person_id) AS t GROUP BY n ORDER BY n;

-- cost spread (max minus min) and quartiles
SELECT QUANTILE_CONT(cost, 0.25) AS q1, MEDIAN(cost) AS q2, QUANTILE_CONT(cost, 0.75) AS q3, QUANTILE_CONT(cost, 0.75) - QUANTILE_CONT(cost, 0.25) AS iqr FROM medical_visits;

-- cost bands
SELECT CASE WHEN cost < 100 THEN 'low' WHEN cost < 1000 THEN 'mid' ELSE 'high' END AS band, COUNT(*) AS visits FROM medical_visits GROUP BY band;

-- three-month moving average of visits
SELECT date_trunc('month', visit_date) AS month, AVG(COUNT(*)) OVER (ORDER BY month ROWS BETWEEN 2 PRECEDING AND CURRENT ROW) AS moving FROM medical_visits GROUP BY month;

-- visits by weekday
SELECT dayofweek(visit_date) AS weekday, COUNT(*) AS visits FROM medical_visits GROUP BY weekday;

-- the busiest month in each district (a window partitioned by district over a WITH query)
WITH t AS (SELECT district, date_trunc('month', visit_date) AS month, COUNT(*) AS n FROM medical_visits GROUP BY district, month) SELECT district, month, n, ROW_NUMBER() OVER (PARTITION BY district ORDER BY n DESC) AS r FROM t WHERE n > 10;

-- the standard deviation of cost by age group
SELECT age_band, STDDEV(cost) AS sd_cost FROM medical_visits GROUP BY age_band;

-- the cost of a typical visit's diagnosis chapter versus the overall average
SELECT diagnosis_chapter, AVG(cost) - AVG(AVG(cost)) OVER () AS above_average FROM medical_visits GROUP BY diagnosis_chapter;

-- a cumulative count of visits by month
SELECT date_trunc('month', visit_date) AS month, SUM(COUNT(*)) OVER (ORDER BY month) AS cumulative FROM medical_visits GROUP BY month;

-- claims over visits per district (two datasets, one per query: not expressible as one DP query)
SELECT v.district, COUNT(c.claim_id) * 1.0 / COUNT(*) AS claims_per_visit FROM medical_visits v LEFT JOIN insurance_claims c ON v.visit_id = c.visit_id GROUP BY v.district;
-- rewrite: join on the person; hint: ON v.person_id = c.person_id
SELECT v.district, COUNT(c.claim_id) * 1.0 / COUNT(*) AS claims_per_visit FROM medical_visits v LEFT JOIN insurance_claims c ON v.person_id = c.person_id GROUP BY v.district;

-- first visit date per person (a row-level window)
SELECT person_id, MIN(visit_date) OVER (PARTITION BY person_id) FROM medical_visits;
-- rewrite: the first visit per person in a per-unit subquery, grouped by month outside; hint: per-unit subquery
SELECT date_trunc('month', first_visit) AS month, COUNT(*) AS persons FROM (SELECT person_id, MIN(visit_date) AS first_visit FROM medical_visits GROUP BY person_id) AS t GROUP BY month;

-- average total cost per person, without a hand-written clamp (a per-unit subquery)
SELECT AVG(total) AS mean_per_person FROM (SELECT person_id, SUM(cost) AS total FROM medical_visits GROUP BY person_id) AS t;

-- average number of visits per person by district
SELECT district, AVG(n) AS visits_per_person FROM (SELECT person_id, district, COUNT(*) AS n FROM medical_visits GROUP BY person_id, district) AS t GROUP BY district;

-- the average of each person's most expensive visit
SELECT AVG(top) AS mean_top FROM (SELECT person_id, MAX(cost) AS top FROM medical_visits GROUP BY person_id) AS t;

-- the average of each person's mean visit cost by age group
SELECT age_band, AVG(mean_cost) AS mean_of_means FROM (SELECT person_id, age_band, AVG(cost) AS mean_cost FROM medical_visits GROUP BY person_id, age_band) AS t GROUP BY age_band;

-- persons with more than ten visits
SELECT COUNT(*) AS frequent FROM (SELECT person_id, COUNT(*) AS n FROM medical_visits GROUP BY person_id) AS t WHERE n > 10;

-- visits counted from a misspelt dataset name
SELECT COUNT(*) FROM medical_visit;
-- rewrite: the dataset's name; hint: did you mean "medical_visits"
SELECT COUNT(*) FROM medical_visits;

-- visits by district with a misspelt keyword
SELEC district, COUNT(*) FROM medical_visits GROUP BY district;
-- rewrite: SELECT; hint: did you mean SELECT
SELECT district, COUNT(*) FROM medical_visits GROUP BY district;

-- visits by district with FROM misspelt
SELECT district, COUNT(*) FORM medical_visits GROUP BY district;
-- rewrite: FROM; hint: did you mean FROM
SELECT district, COUNT(*) FROM medical_visits GROUP BY district;

-- a first look at the rows
SELECT * FROM medical_visits LIMIT 10;
-- rewrite: aggregates by a key; hint: e.g. SELECT age_band, COUNT(*) FROM medical_visits GROUP BY age_band
SELECT age_band, COUNT(*) FROM medical_visits GROUP BY age_band;

-- how many distinct diagnoses occur
SELECT COUNT(DISTINCT diagnosis) FROM medical_visits;

-- visits costing more than the average (a subquery in WHERE)
SELECT COUNT(*) FROM medical_visits WHERE cost > (SELECT AVG(cost) FROM medical_visits);
-- rewrite: the average released first, then its value as a constant; hint: write its released value here as a constant
SELECT COUNT(*) AS above_average FROM medical_visits WHERE cost > 2000;

-- patients overall
SELECT COUNT(DISTINCT person_id) AS patients FROM medical_visits;

-- visits per year
SELECT year(visit_date) AS y, COUNT(*) AS visits FROM medical_visits GROUP BY y ORDER BY y;

-- residents by gender and income band
SELECT gender, income_band, COUNT(*) AS residents FROM residents GROUP BY gender, income_band;

-- the share of inpatient visits overall
SELECT AVG(CASE WHEN inpatient THEN 1.0 ELSE 0.0 END) AS inpatient_share FROM medical_visits;

-- visits in the first half of 2024 by district
SELECT district, COUNT(*) AS visits FROM medical_visits WHERE visit_date BETWEEN DATE '2024-01-01' AND DATE '2024-06-30' GROUP BY district;

-- the five diagnoses with the highest average cost
SELECT diagnosis, AVG(cost) AS mean_cost FROM medical_visits GROUP BY diagnosis ORDER BY mean_cost DESC LIMIT 5;

-- total reimbursed by age group
SELECT age_band, SUM(reimbursed) AS reimbursed FROM insurance_claims GROUP BY age_band;

-- claims per month
SELECT date_trunc('month', claim_date) AS month, COUNT(*) AS claims FROM insurance_claims GROUP BY month ORDER BY month;

-- the 90th percentile of claim amounts
SELECT QUANTILE_CONT(amount, 0.9) AS p90 FROM insurance_claims;

-- average cost by district, only districts with at least 500 visits
SELECT district, AVG(cost) AS mean_cost, COUNT(*) AS visits FROM medical_visits GROUP BY district HAVING visits >= 500 ORDER BY mean_cost DESC;

-- the cost of each visit with the person's total (a row-level window)
SELECT visit_id, cost, SUM(cost) OVER (PARTITION BY person_id) AS person_total FROM medical_visits;
-- rewrite: the per-person total in a per-unit subquery; hint: per-unit subquery
SELECT AVG(total) AS mean_person_total FROM (SELECT person_id, SUM(cost) AS total FROM medical_visits GROUP BY person_id) AS t;
