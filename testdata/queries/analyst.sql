-- Ordinary analyst queries against the committed testdata, one per entry: a comment naming what
-- it asks, then the query. engine/analyst_test.go runs each end to end and reports the share that
-- runs (issue 15's target: at least 85%).

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

-- first visit date per person (a row-level window)
SELECT person_id, MIN(visit_date) OVER (PARTITION BY person_id) FROM medical_visits;
